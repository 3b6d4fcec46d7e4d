"""The removal schedule in a real ``python -m crawler.worker`` (procrastinate's periodic deferrer, a
cron with seconds): its tick finds due removal work and runs ``scrapy crawl optout``, which carries
the request (here: a site without a definition, which the crawl fails at once: no outside world
needed), and queues the maintenance re-scan of a monitored person."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import psycopg
import pytest
from worker_support import Worker, query, wait_for

from crawler.db.pool import close_pools
from crawler.spider_args import PersonQuery
from crawler.store import removals, scans
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, ROOT, store_settings

sys.path.insert(0, str(ROOT / "tests" / "api"))
from api_client import write_listing
from removal_seed import listing

pytestmark = pytest.mark.e2e

PERSON = PersonQuery("Zebulon", "Quixley", state="IL")


async def seed(url: str, tmp_path) -> tuple[int, str]:
    """Two requests of a site the optout crawl has no definition for, from a scan finished 2 h ago:
    one due now, one not before tomorrow (so the person stays monitored)."""
    settings = store_settings(url, tmp_path)
    settings.set("SCREENSHOTS_DIR", str(tmp_path / "shots"))
    try:
        scan_id = await scans.create_scan(settings, PERSON, "scan", ["nosuchsite"])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE scans SET owner = 'w', status = 'completed', created_at = now() - interval '3 hours', "
                "finished_at = now() - interval '2 hours' WHERE id = %s",
                (scan_id,),
            )
        finding = write_listing(settings, scan_id, "nosuchsite", listing(uuid.uuid4().hex[:6]))[0]
        later = write_listing(settings, scan_id, "nosuchsite", listing(uuid.uuid4().hex[:6]))[0]
        waiting = (await removals.request_removal_by_finding(settings, later)).id
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "UPDATE removal_requests SET next_action_at = now() + interval '1 day' WHERE id = %s", (waiting,)
            )
        return (await removals.request_removal_by_finding(settings, finding)).id, scan_id
    finally:
        await close_pools()


async def target_of(url: str, tmp_path, scan_id: str):
    try:
        return (await scans.load_scan(store_settings(url, tmp_path), scan_id)).query
    finally:
        await close_pools()


def test_the_worker_ticks_runs_the_optout_crawl_and_rescans(own_database_url, tmp_path):
    request_id, scan_id = asyncio.run(seed(own_database_url, tmp_path))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_FILE", "LOG_FORMAT", "SCRAPYD_URLS")}
    env.update(
        DATABASE_URL=own_database_url,
        DATA_DIR=str(tmp_path / "data"),
        MAIL_INBOX=f"maildir:{tmp_path / 'mail'}",
        CRAWLER_ENCRYPTION_KEYS=ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=BLIND_INDEX_KEY,
        LOG_LEVEL="INFO",
        WORKER_CONCURRENCY="1",
        WORKER_STALLED_SECONDS="4",
        SCAN_MAX_ATTEMPTS="1",
        REMOVAL_SCHEDULE_CRON="* * * * * *",  # every second
        RESCAN_INTERVAL_HOURS="1",
    )
    worker = Worker(env, tmp_path / "worker.log")
    try:

        def failed():
            rows = query(own_database_url, "SELECT status, reason FROM removal_requests WHERE id = %s", (request_id,))
            return rows[0] if rows[0][0] == "failed" else None

        _, reason = wait_for(failed, "the optout crawl to carry the request", timeout=120, worker=worker)
        assert reason == "no site definition 'nosuchsite'"

        def optout_succeeded():
            return query(
                own_database_url,
                "SELECT 1 FROM procrastinate_jobs WHERE task_name = 'run_optout' AND status = 'succeeded'",
            )

        wait_for(optout_succeeded, "the optout job to end", timeout=60, worker=worker)

        def rescans():
            rows = query(own_database_url, "SELECT id FROM scans WHERE id <> %s AND owner = 'w'", (scan_id,))
            return rows or None

        [(rescan_id,)] = wait_for(rescans, "the maintenance re-scan", timeout=60, worker=worker)
        assert asyncio.run(target_of(own_database_url, tmp_path, str(rescan_id))) == PERSON
        # run by the worker too (its site is unknown: it fails), and not due again for an hour
        wait_for(
            lambda: query(own_database_url, "SELECT 1 FROM scans WHERE id = %s AND status = 'failed'", (rescan_id,)),
            "the re-scan to end",
            timeout=120,
            worker=worker,
        )
        assert len(query(own_database_url, "SELECT id FROM scans WHERE owner = 'w'")) == 2
    finally:
        worker.close()
