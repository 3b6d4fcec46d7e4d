"""The removal jobs of the worker (procrastinate queue ``removals``).

- ``run_optout``: one ``scrapy crawl optout`` (every removal request whose next action is due), a
  child process like a scan's crawl (crawler/worker/crawl.py LocalCrawl). Deferred when a request is
  created (the API, the CLI), when a person marks a task done, when a scan brings a listing back
  (reappeared), and by the tick. The queueing lock ``optout`` keeps at most one such job waiting,
  the lock ``optout`` runs one at a time: a request is never carried by two crawls at once.
- ``removal_tick``: a periodic job (cron ``REMOVAL_SCHEDULE_CRON``, seconds allowed as a 6th column).
  It decides from the database, not from the cadence, so a late or missed tick loses nothing:
  (a) removal work that is due (``next_action_at`` passed: retries after backoff, e-mail polls, and
  the confirmation re-scans REMOVAL_CONFIRM_RESCAN_HOURS after a submission, which the optout
  spider's verification makes) -> a ``run_optout`` job; (b) maintenance re-scans: every monitored
  person (an owner and a scan target's name index with removal requests not ``failed``) whose
  newest scan finished RESCAN_INTERVAL_HOURS ago gets a new low-priority scan of the same sites
  (the target decrypted and sealed again for the new scan id: the ciphertext is bound to its scan).
- After any scan completes, ``after_scan`` reconciles it with the removal requests
  (crawler.store.removals.reconcile_scan: a removed listing found again is ``reappeared`` and asked
  again) and defers the optout crawl when it made new requests.

Job arguments carry no personal data (none at all, or ids); logs name ids and counts only.
"""

from __future__ import annotations

import asyncio
import logging
import sys

import psycopg

from crawler.db.pool import run_in_transaction
from crawler.store import removal_views, removals, scans
from crawler.worker.crawl import LocalCrawl

logger = logging.getLogger(__name__)

QUEUE = "removals"
OPTOUT_TASK = "run_optout"
TICK_TASK = "removal_tick"
OPTOUT_LOCK = "optout"
TICK_LOCK = "removal_tick"
POLL_SECONDS = 1.0
STOP_GRACE_SECONDS = 60.0  # a stopped optout crawl drains for at most this long, then is killed

DEFER_JOB = """
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[
    ROW(%s, %s, 0, %s, %s, '{}'::jsonb, NULL)::procrastinate_job_to_defer_v1
])) AS id"""

# jobs of this queue whose worker stopped answering: retried (a lock held by a dead job would
# otherwise block every later optout crawl)
STALLED_JOBS = """
SELECT job.id FROM procrastinate_jobs job
WHERE job.status = 'doing' AND job.queue_name = %s
  AND (job.worker_id IS NULL OR job.worker_id IN (
      SELECT id FROM procrastinate_workers WHERE last_heartbeat < now() - make_interval(secs => %s)))
FOR UPDATE OF job SKIP LOCKED"""
RETRY_JOB = "SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)"


async def defer_optout_in(conn) -> int | None:
    """Queue the optout crawl in the caller's transaction (a savepoint: a job already waiting is
    not an error). Returns the job id, None when one was waiting already."""
    try:
        async with conn.transaction():
            row = await (await conn.execute(DEFER_JOB, (QUEUE, OPTOUT_TASK, OPTOUT_LOCK, OPTOUT_LOCK))).fetchone()
    except psycopg.errors.UniqueViolation:  # the queueing lock: one is waiting, it will see this work too
        return None
    return int(row[0])


async def defer_optout(settings) -> int | None:
    """Queue the optout crawl (its own transaction); None when one is waiting already."""
    return await run_in_transaction(settings, defer_optout_in)


def optout_command() -> list[str]:
    return [sys.executable, "-m", "scrapy", "crawl", "optout"]


async def run_optout(settings, context=None) -> str:
    """One optout crawl, to its end. Interrupted (the worker shuts down): the crawl is stopped
    (SIGTERM, then SIGKILL after a grace period; every submission is recorded before it leaves, so
    a killed crawl never submits twice) and the job ends; the tick queues the work again."""
    crawl = LocalCrawl("optout", command=optout_command(), name="optout")
    await crawl.start()
    try:
        while (code := await crawl.wait(POLL_SECONDS)) is None:
            pass
    except asyncio.CancelledError:
        await asyncio.shield(_stop(crawl))
        raise
    if code != 0:
        logger.warning("optout crawl exited with code %s", code)
        return f"exit {code}"
    return "done"


async def _stop(crawl: LocalCrawl) -> None:
    await crawl.stop()
    waited = 0.0
    while await crawl.wait(POLL_SECONDS) is None:
        waited += POLL_SECONDS
        if waited >= STOP_GRACE_SECONDS:
            await crawl.kill()


async def rescan_monitored(settings) -> list[str]:
    """A new low-priority scan for every monitored person whose newest scan is older than
    RESCAN_INTERVAL_HOURS (and not pending or running); returns the new scan ids."""
    interval = settings.getfloat("RESCAN_INTERVAL_HOURS") * 3600
    created = []
    for person in await removal_views.people_due_for_rescan(settings, interval):
        stored = await scans.load_scan(settings, person.scan_id)
        if stored is None or stored.query is None:
            continue
        scan_id, _, _ = await scans.request_scan(
            settings, person.owner, stored.query, stored.sites, "low", spider=stored.spider
        )
        created.append(scan_id)
        logger.info("maintenance re-scan %s (after scan %s)", scan_id, person.scan_id)
    return created


async def tick(settings) -> dict:
    """One round of the removal schedule (see the module docstring)."""
    due = await removals.due_requests(settings, 1)
    job = await defer_optout(settings) if due else None
    rescans = await rescan_monitored(settings)
    return {"optout_job": job, "rescans": len(rescans)}


async def after_scan(settings, scan_id: str) -> dict:
    """A scan completed: reconcile it with the removal requests; new requests start the optout crawl."""
    counts = await removals.reconcile_scan(settings, scan_id)
    if counts.get("reappeared"):
        logger.info("scan %s: %d removed listing(s) found again", scan_id, counts["reappeared"])
    if counts.get("requested"):
        await defer_optout(settings)
    return counts


async def retry_stalled(settings, stalled_seconds: float) -> int:
    """Jobs of this queue whose worker died: queued again. Returns how many."""

    async def retry(conn):
        rows = await (await conn.execute(STALLED_JOBS, (QUEUE, float(stalled_seconds)))).fetchall()
        for (job_id,) in rows:
            await conn.execute(RETRY_JOB, (job_id,))
        return len(rows)

    return await run_in_transaction(settings, retry)


def register(app, settings) -> None:
    """The removal tasks on the worker's procrastinate app."""

    @app.task(name=OPTOUT_TASK, queue=QUEUE, lock=OPTOUT_LOCK, queueing_lock=OPTOUT_LOCK, pass_context=True)
    async def run_optout_task(context) -> str:
        return await run_optout(settings, context)

    @app.periodic(cron=settings.get("REMOVAL_SCHEDULE_CRON"))
    @app.task(name=TICK_TASK, queue=QUEUE, lock=TICK_LOCK, queueing_lock=TICK_LOCK)
    async def removal_tick(timestamp: int) -> dict:
        return await tick(settings)
