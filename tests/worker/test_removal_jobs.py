"""The worker's removal jobs against the real PostgreSQL (each test on its own database: they look
at every queued job): the tick queues the optout crawl for due work (one waiting at most) and
maintenance re-scans of monitored people; a completed scan is reconciled with the removal requests
(a removed listing found again is asked again); stalled removal jobs are retried."""

from __future__ import annotations

import sys
import uuid

import psycopg
import pytest

from crawler.db.pool import close_pools
from crawler.spider_args import PersonQuery
from crawler.store import removal_flow, removals, scans
from crawler.worker import removal_jobs
from crawler.worker.task import ScanRun
from support import ROOT, store_settings

sys.path.insert(0, str(ROOT / "tests" / "api"))
from api_client import write_listing
from removal_seed import listing, submitted

pytestmark = pytest.mark.integration

PERSON = PersonQuery("Zebulon", "Quixley", city="Springfield", state="IL", age=51)
OTHER = PersonQuery("Ottoline", "Brack", state="OH")


@pytest.fixture
async def settings(own_database_url, tmp_path):
    settings = store_settings(own_database_url, tmp_path)
    settings.set("SCREENSHOTS_DIR", str(tmp_path / "shots"))
    settings.set("RESCAN_INTERVAL_HOURS", 1.0)
    yield settings
    await close_pools()


def sql(settings, text, *params):
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        cursor = conn.execute(text, params)
        return cursor.fetchall() if cursor.description else None


def jobs(settings, task: str) -> list[tuple]:
    return sql(settings, "SELECT id, status::text FROM procrastinate_jobs WHERE task_name = %s ORDER BY id", task)


async def finished_scan(settings, owner, person=PERSON, hours_ago: float = 2.0, sites=("fastpeople",)) -> str:
    scan_id = await scans.create_scan(settings, person, "scan", list(sites))
    sql(
        settings,
        "UPDATE scans SET owner = %s, status = 'completed', created_at = now() - make_interval(secs => %s), "
        "finished_at = now() - make_interval(secs => %s) WHERE id = %s",
        owner,
        hours_ago * 3600 + 60,
        hours_ago * 3600,
        scan_id,
    )
    return scan_id


async def requested(settings, scan_id: str, url_name: str) -> int:
    finding = write_listing(settings, scan_id, "fastpeople", listing(url_name))[0]
    return (await removals.request_removal_by_finding(settings, finding)).id


async def test_tick_queues_one_optout_crawl_for_due_work_only(settings):
    assert await removal_jobs.tick(settings) == {"optout_job": None, "rescans": 0}
    owner = f"o-{uuid.uuid4().hex[:6]}"
    scan_id = await finished_scan(settings, owner, hours_ago=0)
    request_id = await requested(settings, scan_id, "due")
    sql(settings, "DELETE FROM procrastinate_jobs")  # the request's own deferral is not what is tested
    first = await removal_jobs.tick(settings)
    assert first["optout_job"] is not None and first["rescans"] == 0
    assert (await removal_jobs.tick(settings))["optout_job"] is None  # one waits already
    assert jobs(settings, "run_optout") == [(first["optout_job"], "todo")]
    # nothing due (the flow waits for later): no job
    sql(settings, "DELETE FROM procrastinate_jobs")
    sql(settings, "UPDATE removal_requests SET next_action_at = now() + interval '1 hour' WHERE id = %s", request_id)
    assert (await removal_jobs.tick(settings))["optout_job"] is None and jobs(settings, "run_optout") == []


async def test_monitored_people_are_rescanned_every_interval(settings):
    owner = f"o-{uuid.uuid4().hex[:6]}"
    old = await finished_scan(settings, owner, hours_ago=2, sites=("fastpeople", "radaris"))
    await requested(settings, old, "watched")
    # another person of the owner's whose only request failed, and a person scanned recently
    failed_scan = await finished_scan(settings, owner, OTHER, hours_ago=2)
    failed = await requested(settings, failed_scan, "given-up")
    await removal_flow.fail(settings, failed, "no opt-out")
    recent = await finished_scan(settings, "someone-else", hours_ago=0.5)
    await requested(settings, recent, "recent")

    created = await removal_jobs.rescan_monitored(settings)
    assert len(created) == 1
    new = await scans.load_scan(settings, created[0])
    assert new.query == PERSON and new.sites == ["fastpeople", "radaris"] and new.status == "pending"
    assert sql(settings, "SELECT owner, priority FROM scans WHERE id = %s", created[0]) == [(owner, "low")]
    assert [status for _, status in jobs(settings, "run_scan")] == ["todo"]
    # its target is sealed for its own id (the ciphertext is bound to the scan): not a copy
    sealed = sql(settings, "SELECT target_ciphertext FROM scans WHERE id = ANY(%s)", [old, created[0]])
    assert bytes(sealed[0][0]) != bytes(sealed[1][0])
    # the new scan is pending, then just finished: not due again before the interval
    assert await removal_jobs.rescan_monitored(settings) == []
    sql(settings, "UPDATE scans SET status = 'completed', finished_at = now() WHERE id = %s", created[0])
    assert await removal_jobs.rescan_monitored(settings) == []
    settings.set("RESCAN_INTERVAL_HOURS", 0.0001)  # tests run hours in seconds: 0.36 s
    sql(settings, "UPDATE scans SET finished_at = now() - interval '1 second' WHERE id = %s", created[0])
    assert len(await removal_jobs.rescan_monitored(settings)) == 2  # this person, and the recent one's


async def test_a_completed_scan_that_finds_a_removed_listing_asks_again(settings):
    owner = f"o-{uuid.uuid4().hex[:6]}"
    first = await finished_scan(settings, owner)
    request_id = await requested(settings, first, "comes-back")
    await submitted(settings, request_id)
    await removal_flow.mark_removed(settings, request_id)
    sql(settings, "DELETE FROM procrastinate_jobs")

    later = await scans.create_scan(settings, PERSON, "scan", ["fastpeople"])
    sql(settings, "UPDATE scans SET owner = %s, status = 'completed', finished_at = now() WHERE id = %s", owner, later)
    write_listing(settings, later, "fastpeople", listing("comes-back"))
    # what the worker does when a scan's crawl ends with the scan completed
    assert await ScanRun(settings, None, later).settle(1, 0) == "completed"

    request = await removals.get_request(settings, request_id)
    assert (request.status, request.attempt, request.scan_id) == ("requested", 2, later)
    history = sql(
        settings, "SELECT from_status, to_status FROM removal_events WHERE request_id = %s ORDER BY id", request_id
    )
    assert history[-2:] == [("removed", "reappeared"), ("reappeared", "requested")]
    assert [status for _, status in jobs(settings, "run_optout")] == ["todo"]
    assert {s for (s,) in sql(settings, "SELECT status FROM findings WHERE scan_id = %s", later)} == {
        "removal_requested"
    }


async def test_removal_jobs_of_a_dead_worker_are_retried(settings):
    job_id = await removal_jobs.defer_optout(settings)
    sql(
        settings,
        "INSERT INTO procrastinate_workers (last_heartbeat) VALUES (now() - interval '1 hour') RETURNING id",
    )
    worker_id = sql(settings, "SELECT max(id) FROM procrastinate_workers")[0][0]
    sql(settings, "UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s", worker_id, job_id)
    assert await removal_jobs.retry_stalled(settings, 30) == 1
    assert jobs(settings, "run_optout") == [(job_id, "todo")]
    assert await removal_jobs.retry_stalled(settings, 30) == 0
