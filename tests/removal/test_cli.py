"""``python -m crawler.removal``: request (idempotent, queues the optout crawl), list, tasks and done,
against the real PostgreSQL; one-line errors and exit codes; no listing URL or person printed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid

import psycopg
import pytest

from crawler.db.pool import close_pools
from crawler.removal.__main__ import main
from crawler.spider_args import PersonQuery
from crawler.store import removals
from crawler.store import scans as store
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, ROOT, store_settings

sys.path.insert(0, str(ROOT / "tests" / "api"))
from api_client import write_listing
from removal_seed import CAPTCHA_TEXT, CAPTCHA_URL, listing, with_task

pytestmark = pytest.mark.integration

PERSON = PersonQuery("Zebulon", "Quixley", city="Springfield", state="IL")


@pytest.fixture
async def settings(database_url, tmp_path):
    settings = store_settings(database_url, tmp_path)
    settings.set("SCREENSHOTS_DIR", str(tmp_path / "shots"))
    yield settings
    await close_pools()


async def cli(settings, *args) -> int:
    """``main`` as the command runs it (its own event loop: a thread of its own here)."""
    return await asyncio.to_thread(main, argv(settings, *args))


def argv(settings, *args) -> list[str]:
    values = {
        "DATABASE_URL": settings["DATABASE_URL"],
        "DATA_DIR": settings["DATA_DIR"],
        "CRAWLER_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
        "CRAWLER_BLIND_INDEX_KEY": BLIND_INDEX_KEY,
    }
    return [*(f"-s{k}={v}" for k, v in values.items()), *args]


async def owned_finding(settings, owner: str | None) -> tuple[int, str]:
    scan_id = await store.create_scan(settings, PERSON, "scan", ["fastpeople"])
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE scans SET owner = %s WHERE id = %s", (owner, scan_id))
    url_name = uuid.uuid4().hex[:8]
    return write_listing(settings, scan_id, "fastpeople", listing(url_name))[0], listing(url_name)["listing_url"]


def optout_jobs(settings) -> int:
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'run_optout' AND status = 'todo'"
        ).fetchone()[0]


async def test_request_is_idempotent_and_queues_the_optout_crawl(settings, capsys):
    finding, url = await owned_finding(settings, None)
    assert await cli(settings, "request", "--finding", str(finding)) == 0
    first = capsys.readouterr()
    assert first.out.startswith("removal request ") and ": requested (fastpeople, attempt 1)" in first.out
    request_id = int(first.out.split()[2].rstrip(":"))
    assert await cli(settings, "request", "--finding", str(finding)) == 0
    assert capsys.readouterr().out == first.out  # the same request
    assert optout_jobs(settings) >= 1
    assert await cli(settings, "list") == 0
    shown = capsys.readouterr().out
    assert any(line.split()[:3] == [str(request_id), "fastpeople", "requested"] for line in shown.splitlines())
    assert url not in shown and "Quixley" not in shown


async def test_tasks_and_done_for_an_owner(settings, capsys):
    owner = f"cli-{uuid.uuid4().hex[:6]}"
    finding, url = await owned_finding(settings, owner)
    request = await removals.request_removal_by_finding(settings, finding)
    assert request.owner == owner
    task_id = await with_task(settings, request.id)
    assert await cli(settings, "tasks") == 0  # not this owner's: scans without an owner only
    assert f"task {task_id} " not in capsys.readouterr().out
    assert await cli(settings, "tasks", "--user", owner) == 0
    out = capsys.readouterr().out
    assert f"task {task_id} (removal {request.id}, fastpeople, captcha): {CAPTCHA_TEXT}" in out
    assert f"where: {CAPTCHA_URL}" in out and url not in out

    assert await cli(settings, "done", str(task_id)) == 2  # another owner's
    assert capsys.readouterr().err.strip() == f"error: task {task_id}: no such open task"
    assert await cli(settings, "done", str(task_id), "--user", owner) == 0
    assert "the removal goes on" in capsys.readouterr().out
    assert (await removals.get_request(settings, request.id)).status == "submitted"
    assert await cli(settings, "done", str(task_id), "--user", owner) == 2
    assert capsys.readouterr().err.strip() == f"error: task {task_id}: no such open task of {owner}"


async def test_errors_are_one_line_with_exit_codes(settings, capsys):
    assert await cli(settings, "request", "--finding", "999999999") == 2
    assert capsys.readouterr().err == "error: --finding 999999999: no such finding\n"
    with pytest.raises(SystemExit) as exit_info:
        main(argv(settings, "request", "--finding", "abc"))
    assert exit_info.value.code == 2 and "expected a positive whole number, got 'abc'" in capsys.readouterr().err


def test_a_bad_setting_is_one_line_and_exit_1(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "crawler.removal", "-s", "REMOVAL_SCHEDULE_CRON=every second", "list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: REMOVAL_SCHEDULE_CRON")
