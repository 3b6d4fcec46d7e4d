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
from crawler.store.stats import summary_of_scan

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


# --- the worker's side: one attempt of a scan, its outcome, stalled jobs -------------------------

CLAIM_ATTEMPT = """
UPDATE scans SET attempts = attempts + 1, updated_at = now()
WHERE id = %s AND status IN ('pending', 'running') AND cancel_requested_at IS NULL
RETURNING attempts"""

SCAN_STATE = "SELECT status, cancel_requested_at IS NOT NULL FROM scans WHERE id = %s"

# a scan the worker gives up on, or hands back: unless its crawl already finished it
END_UNFINISHED = """
UPDATE scans SET status = %s, error = %s, updated_at = now(),
    finished_at = CASE WHEN %s IN ('pending', 'running') THEN NULL ELSE now() END
WHERE id = %s AND status IN ('pending', 'running')"""

# the same for end_unfinished, which also summarises the findings of a scan it finishes
# (crawler.store.stats; a hand-back to 'pending' leaves the summary NULL: the scan runs again)
END_UNFINISHED_SUMMARISED = f"""
UPDATE scans SET status = %(status)s, error = %(error)s, updated_at = now(),
    finished_at = CASE WHEN %(status)s IN ('pending', 'running') THEN NULL ELSE now() END,
    findings_summary = {summary_of_scan("%(status)s", "%(id)s")}
WHERE id = %(id)s AND status IN ('pending', 'running')"""

# jobs of workers whose heartbeat stopped (or that were pruned), retried at once; FOR UPDATE
# makes two workers recovering at the same moment retry a job once
STALLED_JOBS = """
SELECT job.id, job.args ->> 'scan_id' FROM procrastinate_jobs job
WHERE job.status = 'doing' AND job.queue_name = %s
  AND (job.worker_id IS NULL OR job.worker_id IN (
      SELECT id FROM procrastinate_workers WHERE last_heartbeat < now() - make_interval(secs => %s)))
FOR UPDATE OF job SKIP LOCKED"""

RETRY_JOB = "SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)"


async def claim_attempt(settings, scan_id: str) -> int | None:
    """Count one more crawl of the scan; None when there is nothing to run (finished,
    cancelled, cancel requested, or no such scan)."""

    async def claim(conn):
        row = await (await conn.execute(CLAIM_ATTEMPT, (scan_id,))).fetchone()
        if row is None:
            await conn.execute(END_UNFINISHED, ("cancelled", None, "cancelled", scan_id))
        return None if row is None else int(row[0])

    return await run_in_transaction(settings, claim)


async def scan_state(settings, scan_id: str) -> tuple[str, bool] | None:
    """(status, cancel requested) of the scan, None when there is no such scan."""

    async def read(conn):
        return await (await conn.execute(SCAN_STATE, (scan_id,))).fetchone()

    row = await run_in_transaction(settings, read)
    return None if row is None else (row[0], bool(row[1]))


async def end_unfinished(settings, scan_id: str, status: str, error: str | None) -> bool:
    """Set a scan that is still pending/running to ``status`` (``pending`` hands it back for a
    retry); False when its crawl had already finished it."""

    async def end(conn):
        cursor = await conn.execute(END_UNFINISHED_SUMMARISED, {"status": status, "error": error, "id": scan_id})
        return cursor.rowcount > 0

    return await run_in_transaction(settings, end)


async def retry_stalled_jobs(settings, stalled_seconds: float) -> list[str]:
    """Put the scans queue's jobs of dead workers (no heartbeat for ``stalled_seconds``) back in
    the queue; returns their scan ids. A stalled job whose cancel was requested is not run again:
    procrastinate fails it, and its scan ends ``cancelled``."""

    async def retry(conn):
        rows = await (await conn.execute(STALLED_JOBS, (QUEUE, float(stalled_seconds)))).fetchall()
        for job_id, scan_id in rows:
            await conn.execute(RETRY_JOB, (job_id,))
            state = await (await conn.execute(SCAN_STATE, (scan_id,))).fetchone()
            if state is not None and state[1]:
                await conn.execute(END_UNFINISHED, ("cancelled", None, "cancelled", scan_id))
        return [scan_id for _, scan_id in rows]

    return await run_in_transaction(settings, retry)
