"""Scan jobs: the procrastinate job that runs a scan, its cancel, the queue's depth and the
workers' heartbeat.

A scan is queued as one procrastinate job (task ``run_scan`` on queue ``scans``) whose only
argument is the scan id: the person searched for stays encrypted in ``scans``, never in the
job queue. Queueing goes through procrastinate's own SQL function (``procrastinate_defer_jobs_v1``)
inside the caller's transaction, so a scan row and its job are created together or not at all.
"""

from __future__ import annotations

import orjson

from crawler.db.pool import run_in_transaction

QUEUE = "scans"
TASK = "run_scan"
# procrastinate fetches the highest priority first (then the oldest)
PRIORITIES = {"high": 100, "normal": 0, "low": -100}

DEFER_JOB = """
SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[
    ROW(%s, %s, %s, %s, %s, %s::jsonb, NULL)::procrastinate_job_to_defer_v1
])) AS id"""

SET_JOB_ID = "UPDATE scans SET job_id = %s, updated_at = now() WHERE id = %s"

LOCK_SCAN = "SELECT status, job_id FROM scans WHERE id = %s FOR UPDATE"

CANCEL_JOB = "SELECT procrastinate_cancel_job_v1(%s, true, false)"

CANCEL_PENDING_SCAN = """
UPDATE scans SET status = 'cancelled', cancel_requested_at = coalesce(cancel_requested_at, now()),
    finished_at = now(), updated_at = now()
WHERE id = %s"""

REQUEST_CANCEL = """
UPDATE scans SET cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
WHERE id = %s"""

QUEUE_DEPTH = """
SELECT status::text, count(*) FROM procrastinate_jobs
WHERE queue_name = %s AND status IN ('todo', 'doing') GROUP BY status"""

HEARTBEAT_AGE = "SELECT extract(epoch FROM now() - max(last_heartbeat)) FROM procrastinate_workers"

FINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


async def defer_scan_job(conn, scan_id: str, priority: str) -> int:
    """Queue the job that runs ``scan_id`` (in the caller's transaction) and record it on the scan.

    The scan id is the job's queueing lock (one queued job per scan) and its lock (one crawl of
    a scan at a time, also while a stalled job is retried)."""
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {sorted(PRIORITIES)}")
    scan_id = str(scan_id)
    args = orjson.dumps({"scan_id": scan_id}).decode()
    row = await (await conn.execute(DEFER_JOB, (QUEUE, TASK, PRIORITIES[priority], scan_id, scan_id, args))).fetchone()
    job_id = int(row[0])
    await conn.execute(SET_JOB_ID, (job_id, scan_id))
    return job_id


async def cancel_scan(conn, scan_id: str) -> str:
    """Cancel a scan (in the caller's transaction); returns its status afterwards.

    ``pending``: its job is cancelled (or, if a worker has just fetched it, asked to abort) and the
    scan is ``cancelled`` at once. ``running``: the cancel is recorded and the job's abort
    requested; the worker then stops the crawl, which ends the scan ``cancelled``. A finished scan
    is left as it is. LookupError when there is no such scan."""
    row = await (await conn.execute(LOCK_SCAN, (str(scan_id),))).fetchone()
    if row is None:
        raise LookupError("no such scan")
    status, job_id = row
    if status in FINAL_STATUSES:
        return status
    if job_id is not None:
        await conn.execute(CANCEL_JOB, (job_id,))
    if status == "pending":
        await conn.execute(CANCEL_PENDING_SCAN, (str(scan_id),))
        return "cancelled"
    await conn.execute(REQUEST_CANCEL, (str(scan_id),))
    return status


async def queue_depth(settings) -> dict:
    """Jobs of the scans queue waiting (``todo``) and running (``doing``)."""

    async def count(conn):
        return await (await conn.execute(QUEUE_DEPTH, (QUEUE,))).fetchall()

    depth = {"todo": 0, "doing": 0}
    depth.update({status: int(n) for status, n in await run_in_transaction(settings, count)})
    return depth


async def worker_heartbeat_age(settings) -> float | None:
    """Seconds since the newest worker heartbeat; None when no worker is registered."""

    async def age(conn):
        return (await (await conn.execute(HEARTBEAT_AGE)).fetchone())[0]

    value = await run_in_transaction(settings, age)
    return None if value is None else max(0.0, float(value))
