"""A removal request's progress through its flow, as the optout crawl and people record it.

The request itself, its state machine and ``transition`` live in ``crawler/store/removals.py``; these
are the writes made while a flow runs: the exactly-once submission record (``begin_submission``
committed before a form is posted or a letter sent, ``finish_submission`` with its answer), steps
advanced or failed with backoff, waits, the verification's verdict, and human tasks (``create_task``,
``complete_task``, which resumes the flow).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from crawler.db.pool import run_in_transaction
from crawler.store.removals import database_now, hours, lock_request, new_attempt, transition, update

TASK_KINDS = ("captcha", "phone", "id_upload", "other")

BEGIN_SUBMISSION = """
UPDATE removal_requests SET submission = 'sending', submission_step = %s, updated_at = now()
WHERE id = %s AND attempt = %s AND submission = 'none'
RETURNING id"""
INSERT_TASK = """
INSERT INTO removal_tasks (request_id, kind, instructions, url, step, resume_step, submitted_by_person)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (request_id) WHERE done_at IS NULL DO NOTHING
RETURNING id"""
OWNED_OPEN_TASK = """
SELECT t.id, t.request_id, t.resume_step, t.submitted_by_person FROM removal_tasks t
JOIN removal_requests r ON r.id = t.request_id
WHERE t.id = %s AND t.done_at IS NULL AND r.owner IS NOT DISTINCT FROM %s
FOR UPDATE OF t"""
TASK_DONE = "UPDATE removal_tasks SET done_at = now(), done_by = %s WHERE id = %s"


async def begin_submission(settings, request_id: int, attempt: int, step: int) -> bool:
    """Record, committed, that the submission of ``step`` is about to leave. False: this attempt's
    submission was made already (or its outcome is unknown): do not submit."""

    async def work(conn):
        return await (await conn.execute(BEGIN_SUBMISSION, (step, request_id, attempt))).fetchone()

    return await run_in_transaction(settings, work) is not None


async def finish_submission(settings, request_id: int, attempt: int, outcome: str, detail: dict | None = None) -> None:
    """The submission's answer. 'sent' (the broker answered) or 'unknown' (it may have arrived, the
    answer was lost): the request is 'submitted' and goes on after the step. 'none': it surely never
    left (connection refused, the mail provider rejected it): the step may be tried again."""
    if outcome not in ("sent", "unknown", "none"):
        raise ValueError(f"unknown submission outcome {outcome!r}")

    async def work(conn):
        request = await lock_request(conn, request_id)
        if request.attempt != attempt or request.submission != "sending":
            return  # a newer attempt, or recorded already
        if outcome == "none":
            await update(conn, request_id, submission="none", submission_step=None)
            return
        columns = {"submission": outcome, "step": request.submission_step + 1, "failures": 0, "reason": None}
        columns["submitted_at"] = await database_now(conn)
        info = {"outcome": outcome, **(detail or {})}
        if request.status in ("requested", "needs_human"):
            await transition(conn, request_id, "submitted", detail=info, **columns)
        else:
            await update(conn, request_id, **columns)

    await run_in_transaction(settings, work)


async def advance(settings, request_id: int, step: int, *, status: str | None = None, detail=None, **columns) -> None:
    """The flow got to ``step`` (the next to run); with ``status``, a transition to it as well.
    Failures in a row start again from 0."""

    async def work(conn):
        request = await lock_request(conn, request_id)
        values = {"step": step, "failures": 0, **columns}
        if status is not None and status != request.status:
            await transition(conn, request_id, status, detail=detail, **values)
        else:
            await update(conn, request_id, **values)

    await run_in_transaction(settings, work)


def backoff(failures: int, base_hours: float, max_hours: float) -> timedelta:
    """Wait after the ``failures``-th failure in a row: base * 2**(failures-1), capped."""
    return hours(min(float(max_hours), float(base_hours) * 2 ** max(0, failures - 1)))


async def step_failed(
    settings, request_id: int, reason: str, retry_max_hours: float, base_hours: float, max_failures: int | None = None
) -> str:
    """A step failed (HTTP error, marker missing): retried with exponential backoff, or 'failed' with
    ``reason`` after REMOVAL_STEP_FAILURES in a row. Returns the request's status after."""
    limit = max_failures or settings.getint("REMOVAL_STEP_FAILURES")

    async def work(conn):
        request = await lock_request(conn, request_id)
        failures = request.failures + 1
        if failures >= limit:
            detail = {"reason": "step_failed", "text": reason, "failures": failures}
            await transition(
                conn, request_id, "failed", detail=detail, failures=failures, reason=reason, next_action_at=None
            )
            return "failed"
        wait = backoff(failures, base_hours, retry_max_hours)
        await update(conn, request_id, failures=failures, reason=reason, next_action_at=await database_now(conn) + wait)
        return request.status

    return await run_in_transaction(settings, work)


async def restart_attempt(settings, request_id: int, reason: str, detail: dict | None = None) -> str:
    """A new attempt (or failed at the maximum): the confirmation e-mail never came, say."""

    async def work(conn):
        return await new_attempt(conn, settings, request_id, reason, detail)

    return await run_in_transaction(settings, work)


async def wait_until(settings, request_id: int, when: datetime, *, status: str | None = None, detail=None, **columns):
    """Look at the request again at ``when`` (optionally moving to ``status``)."""

    async def work(conn):
        request = await lock_request(conn, request_id)
        if status is not None and status != request.status:
            await transition(conn, request_id, status, detail=detail, next_action_at=when, **columns)
        else:
            await update(conn, request_id, next_action_at=when, **columns)

    await run_in_transaction(settings, work)


async def mark_removed(settings, request_id: int, detail: dict | None = None) -> None:
    """Verification found the listing gone: 'removed' (and its findings)."""

    async def work(conn):
        now = await database_now(conn)
        info = {"reason": "verified_gone", **(detail or {})}
        await transition(conn, request_id, "removed", detail=info, removed_at=now, next_action_at=None, reason=None)

    await run_in_transaction(settings, work)


async def verification_failed(settings, request_id: int, detail: dict | None = None) -> str:
    """Verification found the listing still there: a new attempt, or failed at the maximum."""

    async def work(conn):
        return await new_attempt(conn, settings, request_id, "still listed", detail)

    return await run_in_transaction(settings, work)


async def fail(settings, request_id: int, reason: str, detail: dict | None = None) -> None:
    """Give up with ``reason`` (a flow that cannot run: no opt-out steps, a permanent mail rejection)."""

    async def work(conn):
        info = {"reason": reason, **(detail or {})}
        await transition(conn, request_id, "failed", detail=info, reason=reason, next_action_at=None)

    await run_in_transaction(settings, work)


# --- people in the loop ------------------------------------------------------------------------


async def create_task(
    settings,
    request_id: int,
    kind: str,
    instructions: str,
    url: str | None,
    step: int,
    resume_step: int,
    submitted_by_person: bool = False,
    detail: dict | None = None,
) -> int | None:
    """'needs_human' with a task (what to do and where: site texts, never personal data). Returns the
    task id; None when the request has an open task already."""
    if kind not in TASK_KINDS:
        raise ValueError(f"unknown task kind {kind!r}")

    async def work(conn):
        row = await (
            await conn.execute(
                INSERT_TASK, (request_id, kind, instructions, url, step, resume_step, submitted_by_person)
            )
        ).fetchone()
        if row is None:
            return None
        info = {"reason": "human_step", "kind": kind, **(detail or {})}
        await transition(conn, request_id, "needs_human", detail=info, step=step, next_action_at=None, reason=kind)
        return row[0]

    return await run_in_transaction(settings, work)


async def complete_task(settings, owner: str | None, task_id: int, done_by: str | None = None) -> bool:
    """The person did the task: the flow resumes at the task's resume step (now). A task whose
    person made the submission (a CAPTCHA-gated form) counts as this attempt's submission. False when
    there is no such open task of ``owner``'s (None: a request made from the CLI)."""

    async def work(conn):
        task = await (await conn.execute(OWNED_OPEN_TASK, (task_id, owner))).fetchone()
        if task is None:
            return False
        _, request_id, resume_step, by_person = task
        await conn.execute(TASK_DONE, (done_by or owner, task_id))
        request = await lock_request(conn, request_id)
        now = await database_now(conn)
        columns = {"step": resume_step, "failures": 0, "reason": None, "next_action_at": now}
        if by_person:
            columns.update(submission="sent", submission_step=resume_step - 1, submitted_at=now)
        made = by_person or request.submission in ("sent", "unknown")
        status = "submitted" if made else "requested"
        if request.status == "needs_human":
            detail = {"reason": "task_done", "task": task_id, "submitted_by_person": by_person}
            await transition(conn, request_id, status, detail=detail, **columns)
        else:
            await update(conn, request_id, **columns)
        return True

    return await run_in_transaction(settings, work)
