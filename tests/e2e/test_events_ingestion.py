"""The events spider against the sandbox events API: every fault on, exactly once,
no 429 after the first response, crash and resume, shapes discovered, bad arguments."""

import random
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from support import ROOT, http, run_scrapy

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
    result = subprocess.run(command, cwd=ROOT, env=events_env, capture_output=True, text=True, timeout=240)
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
