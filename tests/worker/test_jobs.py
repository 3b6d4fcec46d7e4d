"""crawler.store.jobs on a real database, no worker: a scan's job carries its id alone, one queued
job per scan, priorities, cancel of pending and running scans, queue depth, the heartbeat age and
the recovery of a dead worker's jobs."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from scrapy.settings import Settings
from worker_support import cancel, create_broken_scan, defer, job_row, query, scan_row

import crawler.settings
from crawler.db.pool import close_pools
from crawler.store import jobs

pytestmark = pytest.mark.integration


def settings_for(url: str) -> Settings:
    settings = Settings({name: getattr(crawler.settings, name) for name in dir(crawler.settings) if name.isupper()})
    settings.set("DATABASE_URL", url)
    return settings


def run(coroutine):
    async def go():
        try:
            return await coroutine
        finally:
            await close_pools()

    return asyncio.run(go())


def test_job_carries_the_scan_id_alone_with_its_priority(own_database_url):
    low, high = create_broken_scan(own_database_url), create_broken_scan(own_database_url)
    low_job, high_job = defer(own_database_url, low, "low"), defer(own_database_url, high, "high")
    rows = query(
        own_database_url,
        "SELECT id, queue_name, task_name, priority, lock, queueing_lock, args FROM procrastinate_jobs ORDER BY id",
    )
    assert rows == [
        (low_job, "scans", "run_scan", -100, low, low, {"scan_id": low}),
        (high_job, "scans", "run_scan", 100, high, high, {"scan_id": high}),
    ]
    assert scan_row(own_database_url, low)["job_id"] == low_job
    # one queued job per scan (the queueing lock): a second defer fails and changes nothing
    with pytest.raises(psycopg.errors.UniqueViolation):
        defer(own_database_url, low, "high")
    assert scan_row(own_database_url, low)["job_id"] == low_job
    with pytest.raises(ValueError):
        defer(own_database_url, create_broken_scan(own_database_url), "urgent")
    assert run(jobs.queue_depth(settings_for(own_database_url))) == {"todo": 2, "doing": 0}


def test_cancel_pending_running_and_finished_scans(own_database_url):
    pending = create_broken_scan(own_database_url)
    pending_job = defer(own_database_url, pending, "normal")
    assert cancel(own_database_url, pending) == "cancelled"
    assert job_row(own_database_url, pending_job)["status"] == "cancelled"
    assert scan_row(own_database_url, pending)["finished_at"] is not None

    running = create_broken_scan(own_database_url)
    running_job = defer(own_database_url, running, "normal")
    with psycopg.connect(own_database_url, autocommit=True) as conn:  # as a worker and its crawl leave them
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing' WHERE id = %s", (running_job,))
        conn.execute("UPDATE scans SET status = 'running' WHERE id = %s", (running,))
    assert cancel(own_database_url, running) == "running"
    assert job_row(own_database_url, running_job) == {"status": "doing", "attempts": 0, "abort_requested": True}
    assert scan_row(own_database_url, running)["cancel_requested_at"] is not None

    with psycopg.connect(own_database_url, autocommit=True) as conn:
        conn.execute("UPDATE scans SET status = 'completed' WHERE id = %s", (running,))
    assert cancel(own_database_url, running) == "completed"
    with pytest.raises(LookupError):
        cancel(own_database_url, "00000000-0000-0000-0000-000000000000")


def test_stalled_jobs_of_a_silent_worker_are_queued_again_once(own_database_url):
    settings = settings_for(own_database_url)
    assert run(jobs.worker_heartbeat_age(settings)) is None
    scan_id = create_broken_scan(own_database_url)
    job_id = defer(own_database_url, scan_id, "normal")
    with psycopg.connect(own_database_url, autocommit=True) as conn:
        alive = conn.execute("SELECT * FROM procrastinate_register_worker_v1()").fetchone()[0]
        dead = conn.execute("SELECT * FROM procrastinate_register_worker_v1()").fetchone()[0]
        conn.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 minute' WHERE id = %s", (dead,)
        )
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = %s WHERE id = %s", (alive, job_id))
        conn.execute("UPDATE scans SET status = 'running' WHERE id = %s", (scan_id,))
    assert run(jobs.worker_heartbeat_age(settings)) < 30
    # its worker is alive: nothing to recover
    assert run(jobs.retry_stalled_jobs(settings, 30)) == []
    assert job_row(own_database_url, job_id)["status"] == "doing"
    with psycopg.connect(own_database_url, autocommit=True) as conn:
        conn.execute("UPDATE procrastinate_jobs SET worker_id = %s WHERE id = %s", (dead, job_id))
    assert run(jobs.retry_stalled_jobs(settings, 30)) == [scan_id]
    assert job_row(own_database_url, job_id) == {"status": "todo", "attempts": 1, "abort_requested": False}
    assert run(jobs.retry_stalled_jobs(settings, 30)) == []  # once
    assert run(jobs.queue_depth(settings)) == {"todo": 1, "doing": 0}


def test_stalled_job_of_a_cancelled_scan_is_not_run_again(own_database_url):
    settings = settings_for(own_database_url)
    scan_id = create_broken_scan(own_database_url)
    job_id = defer(own_database_url, scan_id, "normal")
    with psycopg.connect(own_database_url, autocommit=True) as conn:
        conn.execute("UPDATE procrastinate_jobs SET status = 'doing', worker_id = NULL WHERE id = %s", (job_id,))
        conn.execute("UPDATE scans SET status = 'running' WHERE id = %s", (scan_id,))
    assert cancel(own_database_url, scan_id) == "running"
    assert run(jobs.retry_stalled_jobs(settings, 30)) == [scan_id]
    assert job_row(own_database_url, job_id)["status"] == "failed"
    row = scan_row(own_database_url, scan_id)
    assert row["status"] == "cancelled" and row["finished_at"] is not None
