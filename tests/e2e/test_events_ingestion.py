"""The events spider against the sandbox events API: every fault on, exactly once,
no 429 after the first response, crash and resume, shapes discovered, bad arguments."""

import random
import re
import signal
import subprocess
import sys
import time
import uuid

import psycopg
import pytest

from support import REDIS_URL, ROOT, http, run_scrapy

pytestmark = pytest.mark.e2e

TOTAL = 20000  # the session sandbox's --events-count


def configure(sandbox, **config):
    """The events API from its startup settings, with ``config`` changed."""
    return http(f"{sandbox['events']}/events/config", data=dict(config, defaults=True)).json()


def server_stats(sandbox):
    return http(f"{sandbox['events']}/events/stats").json()


@pytest.fixture
def events_env(crawl_env, own_database_url):
    return dict(
        crawl_env,
        DATABASE_URL=own_database_url,
        EVENTS_API_KEY="sandbox-key",
        RETRY_BACKOFF_BASE="0.1",
        RETRY_BACKOFF_MAX="1",
    )


def events_args(sandbox, *extra):
    return ["crawl", "events", "-a", f"base_url={sandbox['events']}", *extra]


def counts(url):
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()


def test_every_fault_on_every_event_once_and_no_429(events_env, sandbox):
    configure(
        sandbox, fault_rate=0.05, truncate_rate=0.05, duplicate_rate=0.2, cursor_ttl=1.5, rate_limit=30, rate_window=2
    )
    result = run_scrapy(events_args(sandbox, "-a", "page_size=400", "-a", "partitions=3"), events_env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = server_stats(sandbox)
    assert stats["faults"] > 0 and stats["truncated"] > 0 and stats["duplicate_pages"] > 0
    assert stats["rate_limited"] == 0, stats
    assert counts(events_env["DATABASE_URL"]) == (TOTAL, TOTAL) == (stats["distinct_events_served"],) * 2
    assert "events API: body nested, id field 'id'" in result.stderr
    assert "since/until honoured" in result.stderr and "3 partition(s)" in result.stderr


def test_flat_bodies_renamed_ids_and_ignored_ranges_fall_back_to_one_chain(events_env, sandbox):
    configure(sandbox, flat=True, id_field="eventId", no_range=True, cursor_ttl=30, rate_limit=1000, rate_window=1)
    result = run_scrapy(events_args(sandbox, "-a", "page_size=2000"), events_env, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "body flat, id field 'eventId'" in result.stderr and "since/until ignored" in result.stderr
    assert "1 partition(s)" in result.stderr
    assert counts(events_env["DATABASE_URL"]) == (TOTAL, TOTAL)


def test_killed_three_times_then_resumed_exactly_once(events_env, sandbox):
    configure(sandbox, rate_limit=40, rate_window=1, duplicate_rate=0.1)
    command = [
        sys.executable,
        "-m",
        "scrapy",
        *events_args(
            sandbox,
            "-a",
            "page_size=200",
            "-a",
            "partitions=2",
            "-s",
            "PG_BATCH_ROWS=500",
            "-s",
            "PG_FLUSH_SECONDS=0.2",
        ),
    ]
    rng = random.Random(7)
    for _ in range(3):
        before = counts(events_env["DATABASE_URL"])[0]
        process = subprocess.Popen(
            command, cwd=ROOT, env=events_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 60  # start-up time varies with the machine's load: kill once rows flow
        while counts(events_env["DATABASE_URL"])[0] == before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    partial = counts(events_env["DATABASE_URL"])
    assert 0 < partial[0] < TOTAL  # the kills really interrupted it
    result = subprocess.run(command, cwd=ROOT, env=events_env, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "event(s) committed by earlier runs" in result.stderr
    assert counts(events_env["DATABASE_URL"]) == (TOTAL, TOTAL)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-a", "since=yesterday"], "error: -a since: expected ISO-8601 or epoch milliseconds"),
        (["-a", "partitions=0"], "error: -a partitions: expected a whole number from 1 to 256"),
        (["-a", "since=2026-10-20", "-a", "until=2026-10-10"], "error: -a until: must be later than since"),
    ],
)
def test_bad_arguments_stop_before_the_crawl(events_env, sandbox, args, message):
    result = run_scrapy(events_args(sandbox, *args), events_env)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_a_missing_key_is_one_line(events_env, sandbox):
    env = {k: v for k, v in events_env.items() if k != "EVENTS_API_KEY"}
    result = run_scrapy(events_args(sandbox), env)
    assert result.returncode == 2 and "error: -a api_key: required (or set EVENTS_API_KEY)" in result.stderr


def test_expired_cursors_resume_from_the_last_timestamp_without_loss(events_env, sandbox):
    # a budget of 5 requests/s shared by 3 chains: each cursor waits ~0.6 s, longer than it lives
    configure(sandbox, cursor_ttl=0.3, expired_status=410, rate_limit=10, rate_window=2, duplicate_rate=0.1)
    result = run_scrapy(events_args(sandbox, "-a", "page_size=2000", "-a", "partitions=3"), events_env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "cursor expired after" in result.stderr and "'events/cursor_expired'" in result.stderr
    assert server_stats(sandbox)["requests"].get("410", 0) > 0
    assert counts(events_env["DATABASE_URL"]) == (TOTAL, TOTAL)


def test_a_refused_key_stops_with_one_line_and_exit_1(events_env, sandbox):
    configure(sandbox)
    result = run_scrapy(events_args(sandbox, "-a", "api_key=wrong"), events_env)
    assert result.returncode == 1
    assert "error: events stopped: events API answered 401 (UNAUTHORIZED) to the first request" in result.stderr


@pytest.fixture
def shared_env(events_env, redis_prefix):
    """The events spider on the shared scheduler: requests travel through Redis as copies."""
    return dict(
        events_env,
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=f"{redis_prefix}{uuid.uuid4().hex[:6]}:",
        LOG_LEVEL="INFO",
        SCHEDULER_IDLE_CLOSE_SECONDS="3",
        SCHEDULER_STATS_SECONDS="1",
    )


FINAL = re.compile(
    r"events finished: this worker fetched ([\d,]+), [\d,]+/s; job: ([\d,]+) committed"
    r"(?: \(([\d.]+)% of ([\d,]+)\))?; partitions (\d+)/(\d+) done"
)


def final_line(stderr: str) -> dict:
    found = FINAL.findall(stderr)
    assert len(found) == 1, stderr[-3000:]
    fetched, committed, share, total, done, planned = found[0]
    return {
        "fetched": int(fetched.replace(",", "")),
        "committed": int(committed.replace(",", "")),
        "share": share,
        "total": int(total.replace(",", "")) if total else None,
        "done": int(done),
        "planned": int(planned),
    }


def stat(stderr: str, name: str) -> int:
    """A counter from the stats Scrapy dumps at the end (0 when never incremented)."""
    found = re.findall(rf"'{re.escape(name)}': (\d+)", stderr)
    return int(found[-1]) if found else 0


def stored(url) -> dict:
    with psycopg.connect(url) as conn:
        rows, distinct = conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        planned, done, committed = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE completed), sum(rows_committed) FROM ingest_checkpoints"
        ).fetchone()
    return {"rows": rows, "distinct": distinct, "planned": planned, "done": done, "committed": committed}


def test_progress_through_the_shared_scheduler_matches_the_stored_rows(shared_env, sandbox):
    # no repeats, no faults: every event fetched once, so fetched == committed == stored rows
    configure(sandbox, rate_limit=1000, rate_window=1)
    result = run_scrapy(events_args(sandbox, "-a", "page_size=1000", "-a", "partitions=4"), shared_env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    pages = TOTAL // 1000
    assert (
        stat(result.stderr, "scheduler/dequeued/redis") >= pages and stat(result.stderr, "scheduler/unshareable") == 0
    )
    db = stored(shared_env["DATABASE_URL"])
    assert db == {"rows": TOTAL, "distinct": TOTAL, "planned": 4, "done": 4, "committed": TOTAL}
    line = final_line(result.stderr)
    assert line == {"fetched": TOTAL, "committed": TOTAL, "share": "100.0", "total": TOTAL, "done": 4, "planned": 4}
    assert stat(result.stderr, "events/fetched") == TOTAL
    assert stat(result.stderr, "events/partitions_done") == 4
    # the worker that planned saw every partition end: it closed then, not after the idle timeout
    assert "events: every partition of the plan is complete" in result.stderr
    assert "'finish_reason': 'finished'" in result.stderr


def test_two_workers_on_one_job_each_report_their_share(shared_env, sandbox, tmp_path):
    """Two workers started with the same command share the job: one discovers and plans, both fetch pages.
    Each line tells what that worker fetched; the job's figures, the same in both, are the stored ones."""
    # 200 pages at 20/s: ten seconds or more, so both workers are up long before the pages run out; two
    # requests at a time each, so neither can hold all four chains and the other always finds some queued
    configure(sandbox, rate_limit=20, rate_window=1)
    args = events_args(sandbox, "-a", "page_size=100", "-a", "partitions=4", "-s", "CONCURRENT_REQUESTS=2")
    command = [sys.executable, "-m", "scrapy", *args]
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    workers = [
        subprocess.Popen(command, cwd=ROOT, env=shared_env, stdout=subprocess.DEVNULL, stderr=log.open("w"))
        for log in logs
    ]
    try:
        codes = [worker.wait(timeout=240) for worker in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    stderr = [log.read_text() for log in logs]
    assert codes == [0, 0], stderr[0][-3000:] + stderr[1][-3000:]
    db = stored(shared_env["DATABASE_URL"])
    assert db == {"rows": TOTAL, "distinct": TOTAL, "planned": 4, "done": 4, "committed": TOTAL}
    assert sum("events: 4 partition(s), 4 to do" in text for text in stderr) == 1  # planned once
    fetched = [stat(text, "events/fetched") for text in stderr]
    assert sum(fetched) == TOTAL and all(fetched), fetched  # each page once, both workers fetched
    assert sum(stat(text, "events/partitions_done") for text in stderr) == 4
    for text, own in zip(stderr, fetched, strict=True):
        line = final_line(text)
        assert line["fetched"] == own
        assert (line["committed"], line["done"], line["planned"]) == (TOTAL, 4, 4)
        if "events API: body nested" in text:  # the worker that discovered knows the announced total
            assert (line["share"], line["total"]) == ("100.0", TOTAL)
