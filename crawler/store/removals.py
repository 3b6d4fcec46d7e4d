"""Removal requests: one per owner and listing, carried through its site's opt-out flow.

The state machine (``ALLOWED``) and every write of ``removal_requests``, ``removal_events`` and
``removal_tasks`` live here; the optout spider (crawler/removal/, spiders/optout.py), the API and the
CLI call these functions. Each status change goes through ``transition``, which refuses a move the
table does not allow, writes the history row and keeps the listing's findings in step.

Exactly once: ``begin_submission`` moves ``submission`` from 'none' to 'sending' in its own committed
transaction before a form is posted or a letter sent, ``finish_submission`` records the answer. A
request loaded while still 'sending' (the crawl died in between) has an unknown outcome: it goes on
after the submission step and is never submitted again in that attempt.

Nothing personal is stored in plaintext: a request names its listing by (site, blind index of the URL)
and the newest scan that found it; ``load_request`` decrypts the URL from that scan's findings and the
person from its target, in memory only. Reasons and details are codes and short texts, never values.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from crawler.db.pool import run_in_transaction
from crawler.security import context, keyring_from_settings
from crawler.spider_args import PersonQuery
from crawler.store import scans
from crawler.store.findings import OWNED_LISTING

STATUSES = (
    "requested",
    "submitted",
    "awaiting_confirmation",
    "confirmed",
    "removed",
    "needs_human",
    "reappeared",
    "failed",
)
# requests the optout crawl still carries (the others wait for a person or a scan, or are over)
ACTIVE = ("requested", "submitted", "awaiting_confirmation", "confirmed")

# from -> the statuses it may move to. 'requested' again = a new attempt (verification found the
# listing still there, a confirmation e-mail never came) or a flow restarted.
ALLOWED: dict[str, frozenset[str]] = {
    "requested": frozenset({"requested", "submitted", "awaiting_confirmation", "needs_human", "failed"}),
    "submitted": frozenset({"requested", "awaiting_confirmation", "confirmed", "removed", "needs_human", "failed"}),
    "awaiting_confirmation": frozenset({"requested", "confirmed", "needs_human", "failed"}),
    "confirmed": frozenset({"requested", "removed", "needs_human", "failed"}),
    "needs_human": frozenset({"requested", "submitted", "awaiting_confirmation", "confirmed", "failed"}),
    "removed": frozenset({"reappeared"}),
    "reappeared": frozenset({"requested", "failed"}),
    "failed": frozenset({"requested"}),
}
# what the listing's findings become with the request's status
FINDING_STATUS = {"removed": "removed", "reappeared": "reappeared", "requested": "removal_requested"}

TASK_KINDS = ("captcha", "phone", "id_upload", "other")

COLUMNS = """id, owner, scan_id, website_id, listing_url_index, status, attempt, step, flow_sha256, reference,
    submission, submission_step, next_action_at, failures, reason, created_at, updated_at, submitted_at,
    confirmed_at, removed_at"""
# columns transition(**columns) may set
SETTABLE = frozenset(
    {
        "attempt",
        "step",
        "flow_sha256",
        "submission",
        "submission_step",
        "next_action_at",
        "failures",
        "reason",
        "scan_id",
        "submitted_at",
        "confirmed_at",
        "removed_at",
    }
)

INSERT_REQUEST = """
INSERT INTO removal_requests (owner, scan_id, website_id, listing_url_index, reference, next_action_at)
VALUES (%s, %s, %s, %s, %s, now())
ON CONFLICT (coalesce(owner, ''), website_id, listing_url_index) DO NOTHING
RETURNING id"""
FIND_REQUEST = f"""
SELECT {COLUMNS} FROM removal_requests
WHERE coalesce(owner, '') = coalesce(%s, '') AND website_id = %s AND listing_url_index = %s"""
GET_REQUEST = f"SELECT {COLUMNS} FROM removal_requests WHERE id = %s"
LOCK_REQUEST = f"SELECT {COLUMNS} FROM removal_requests WHERE id = %s FOR UPDATE"
INSERT_EVENT = """
INSERT INTO removal_events (request_id, from_status, to_status, attempt, step, detail)
VALUES (%s, %s, %s, %s, %s, %s::jsonb)"""
# the findings of the listing in every scan of the request's owner
UPDATE_FINDINGS = """
UPDATE findings SET status = %(status)s, updated_at = now()
WHERE website_id = %(site)s AND listing_url_index = %(index)s AND status <> 'dismissed'
  AND scan_id IN (SELECT id FROM scans WHERE owner IS NOT DISTINCT FROM %(owner)s)"""
SCAN_OWNER = "SELECT owner FROM scans WHERE id = %s"
FINDING_LISTING = "SELECT scan_id, website_id, listing_url_index FROM findings WHERE id = %s"
LISTING_URL = """
SELECT listing_url_ciphertext FROM findings WHERE scan_id = %s AND website_id = %s AND listing_url_index = %s
LIMIT 1"""
DUE = """
SELECT id FROM removal_requests
WHERE next_action_at IS NOT NULL AND next_action_at <= %s AND status = ANY(%s)
ORDER BY next_action_at, id LIMIT %s"""
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
SCAN_LISTINGS = "SELECT DISTINCT website_id, listing_url_index FROM findings WHERE scan_id = %s"


class TransitionRefused(Exception):
    """A status change the state machine does not allow (a bug or a race, never personal data)."""


@dataclass
class RemovalRequest:
    id: int
    owner: str | None
    scan_id: str
    website_id: str
    listing_url_index: bytes
    status: str
    attempt: int
    step: int
    flow_sha256: str | None
    reference: str
    submission: str
    submission_step: int | None
    next_action_at: datetime | None
    failures: int
    reason: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    confirmed_at: datetime | None
    removed_at: datetime | None
    # decrypted by load_request only, in memory; never logged
    listing_url: str | None = None
    person: PersonQuery | None = None

    def __repr__(self) -> str:  # no listing URL or person in a traceback or log
        return f"RemovalRequest(id={self.id}, site={self.website_id}, status={self.status}, attempt={self.attempt})"


def _request(row) -> RemovalRequest | None:
    if row is None:
        return None
    values = list(row)
    values[2] = str(values[2])
    values[4] = bytes(values[4])
    return RemovalRequest(*values)


def new_reference() -> str:
    """The request's token: the address plus-tag and the reference in letters (lowercase: tags survive
    mail systems that fold case)."""
    return secrets.token_hex(8)


def tagged_address(settings, reference: str) -> str:
    """REMOVAL_EMAIL with ``+reference``: optout@example.org -> optout+<reference>@example.org."""
    local, _, domain = settings.get("REMOVAL_EMAIL").rpartition("@")
    return f"{local}+{reference}@{domain}"


def _hours(value: float) -> timedelta:
    return timedelta(seconds=float(value) * 3600)


async def _now(conn) -> datetime:
    return (await (await conn.execute("SELECT now()")).fetchone())[0]


async def _lock(conn, request_id: int) -> RemovalRequest:
    request = _request(await (await conn.execute(LOCK_REQUEST, (request_id,))).fetchone())
    if request is None:
        raise LookupError(f"no removal request {request_id}")
    return request


async def transition(conn, request_id: int, to_status: str, *, detail: dict | None = None, **columns):
    """Move the request to ``to_status`` (setting ``columns`` too), within the caller's transaction:
    TransitionRefused unless ALLOWED, a history row, the findings kept in step. Returns the request
    as it was before."""
    unknown = set(columns) - SETTABLE
    if unknown:
        raise ValueError(f"transition cannot set {sorted(unknown)}")
    request = await _lock(conn, request_id)
    if to_status not in ALLOWED.get(request.status, ()):
        raise TransitionRefused(f"removal request {request_id}: {request.status} -> {to_status} is not allowed")
    assignments = ", ".join(f"{name} = %({name})s" for name in columns)
    sql = "UPDATE removal_requests SET status = %(status)s, updated_at = now()"
    sql += f", {assignments}" if assignments else ""
    await conn.execute(sql + " WHERE id = %(id)s", {**columns, "status": to_status, "id": request_id})
    await conn.execute(
        INSERT_EVENT,
        (
            request_id,
            request.status,
            to_status,
            columns.get("attempt", request.attempt),
            columns.get("step", request.step),
            orjson.dumps(detail or {}).decode(),
        ),
    )
    if to_status in FINDING_STATUS:
        params = {
            "status": FINDING_STATUS[to_status],
            "site": request.website_id,
            "index": request.listing_url_index,
            "owner": request.owner,
        }
        await conn.execute(UPDATE_FINDINGS, params)
    return request


async def update(conn, request_id: int, **columns) -> None:
    """Change columns without a status change (step progress, next look): no history row."""
    unknown = set(columns) - SETTABLE
    if unknown or not columns:
        raise ValueError(f"update cannot set {sorted(unknown) or 'nothing'}")
    assignments = ", ".join(f"{name} = %({name})s" for name in columns)
    await conn.execute(
        f"UPDATE removal_requests SET {assignments}, updated_at = now() WHERE id = %(id)s",
        {**columns, "id": request_id},
    )


# --- creating requests ---------------------------------------------------------------------------


async def _request_listing(conn, owner, scan_id, website_id, url_index) -> RemovalRequest:
    row = await (
        await conn.execute(INSERT_REQUEST, (owner, scan_id, website_id, url_index, new_reference()))
    ).fetchone()
    if row is None:  # requested before: the same request back
        return _request(await (await conn.execute(FIND_REQUEST, (owner, website_id, url_index))).fetchone())
    await conn.execute(INSERT_EVENT, (row[0], None, "requested", 1, 0, b"{}".decode()))
    await conn.execute(
        UPDATE_FINDINGS, {"status": "removal_requested", "site": website_id, "index": url_index, "owner": owner}
    )
    return _request(await (await conn.execute(GET_REQUEST, (row[0],))).fetchone())


async def request_removal(settings, owner: str, finding_id: int) -> RemovalRequest | None:
    """The one removal request of the finding's listing (created now, or the one made before);
    None when the finding is not in one of ``owner``'s scans."""

    async def work(conn):
        listing = await (await conn.execute(OWNED_LISTING, (finding_id, owner))).fetchone()
        if listing is None:
            return None
        return await _request_listing(conn, owner, *listing)

    return await run_in_transaction(settings, work)


async def request_removal_by_finding(settings, finding_id: int) -> RemovalRequest | None:
    """For the CLI: the request of the finding's listing, owned by its scan's owner (whoever that is);
    None when there is no such finding."""

    async def work(conn):
        listing = await (await conn.execute(FINDING_LISTING, (finding_id,))).fetchone()
        if listing is None:
            return None
        owner = (await (await conn.execute(SCAN_OWNER, (listing[0],))).fetchone())[0]
        return await _request_listing(conn, owner, *listing)

    return await run_in_transaction(settings, work)


async def request_removal_by_listing(settings, scan_id: str, website_id: str, listing_url: str):
    """For the CLI: the request of the scan's listing with this URL (its blind index); None when the
    scan has no finding there."""
    index = keyring_from_settings(settings).blind_index(listing_url)

    async def work(conn):
        found = await (await conn.execute(LISTING_URL, (scan_id, website_id, index))).fetchone()
        if found is None:
            return None
        owner = (await (await conn.execute(SCAN_OWNER, (scan_id,))).fetchone())[0]
        return await _request_listing(conn, owner, scan_id, website_id, index)

    return await run_in_transaction(settings, work)


# --- the optout crawl's side ------------------------------------------------------------------------


async def due_requests(settings, limit: int, now: datetime | None = None) -> list[int]:
    """Ids of active requests whose next action is due (``next_action_at`` <= now), oldest first."""

    async def work(conn):
        moment = now or await _now(conn)
        return await (await conn.execute(DUE, (moment, list(ACTIVE), limit))).fetchall()

    return [row[0] for row in await run_in_transaction(settings, work)]


async def get_request(settings, request_id: int) -> RemovalRequest | None:
    """The request's row, nothing decrypted."""

    async def work(conn):
        return await (await conn.execute(GET_REQUEST, (request_id,))).fetchone()

    return _request(await run_in_transaction(settings, work))


async def load_request(settings, request_id: int) -> RemovalRequest | None:
    """The request with its listing URL and person decrypted (in memory only). A submission still
    'sending' (the crawl died between recording it and its answer) becomes 'unknown': the request
    goes on after that step as submitted, and is never submitted again in this attempt."""

    async def work(conn):
        request = _request(await (await conn.execute(LOCK_REQUEST, (request_id,))).fetchone())
        if request is None:
            return None, None, None
        if request.submission == "sending":
            after = (request.submission_step if request.submission_step is not None else request.step) + 1
            detail = {"reason": "submission_unknown", "outcome": "unknown", "kind": "crash"}
            columns = {"submission": "unknown", "step": after, "failures": 0, "reason": "submission outcome unknown"}
            if request.status in ("requested", "needs_human"):
                await transition(conn, request_id, "submitted", detail=detail, submitted_at=await _now(conn), **columns)
            else:
                await update(conn, request_id, **columns)
            request = _request(await (await conn.execute(GET_REQUEST, (request_id,))).fetchone())
        url = await (
            await conn.execute(LISTING_URL, (request.scan_id, request.website_id, request.listing_url_index))
        ).fetchone()
        target = await (await conn.execute(scans.LOAD_SCAN, (request.scan_id,))).fetchone()
        return request, url, target

    request, url, target = await run_in_transaction(settings, work)
    if request is None:
        return None
    ring = keyring_from_settings(settings)
    if url is not None:
        request.listing_url = ring.decrypt_text(url[0], context.finding_listing_url(request.scan_id))
    if target is not None and target[3] is not None:
        request.person = scans.open_target(ring, request.scan_id, target[3])
    return request


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
        request = await _lock(conn, request_id)
        if request.attempt != attempt or request.submission != "sending":
            return  # a newer attempt, or recorded already
        if outcome == "none":
            await update(conn, request_id, submission="none", submission_step=None)
            return
        columns = {"submission": outcome, "step": request.submission_step + 1, "failures": 0, "reason": None}
        columns["submitted_at"] = await _now(conn)
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
        request = await _lock(conn, request_id)
        values = {"step": step, "failures": 0, **columns}
        if status is not None and status != request.status:
            await transition(conn, request_id, status, detail=detail, **values)
        else:
            await update(conn, request_id, **values)

    await run_in_transaction(settings, work)


def backoff(failures: int, base_hours: float, max_hours: float) -> timedelta:
    """Wait after the ``failures``-th failure in a row: base * 2**(failures-1), capped."""
    return _hours(min(float(max_hours), float(base_hours) * 2 ** max(0, failures - 1)))


async def step_failed(
    settings, request_id: int, reason: str, retry_max_hours: float, base_hours: float, max_failures: int | None = None
) -> str:
    """A step failed (HTTP error, marker missing): retried with exponential backoff, or 'failed' with
    ``reason`` after REMOVAL_STEP_FAILURES in a row. Returns the request's status after."""
    limit = max_failures or settings.getint("REMOVAL_STEP_FAILURES")

    async def work(conn):
        request = await _lock(conn, request_id)
        failures = request.failures + 1
        if failures >= limit:
            detail = {"reason": "step_failed", "text": reason, "failures": failures}
            await transition(
                conn, request_id, "failed", detail=detail, failures=failures, reason=reason, next_action_at=None
            )
            return "failed"
        wait = backoff(failures, base_hours, retry_max_hours)
        await update(conn, request_id, failures=failures, reason=reason, next_action_at=await _now(conn) + wait)
        return request.status

    return await run_in_transaction(settings, work)


async def new_attempt(conn, settings, request_id: int, reason: str, detail: dict | None = None) -> str:
    """Within the caller's transaction: a new attempt (requested, attempt+1, step 0, no submission)
    while attempt < REMOVAL_MAX_ATTEMPTS, else 'failed' with ``reason``. Returns the status after."""
    request = await _lock(conn, request_id)
    info = {"reason": reason, **(detail or {})}
    if request.attempt >= settings.getint("REMOVAL_MAX_ATTEMPTS"):
        text = f"{reason} after {request.attempt} attempts"
        await transition(conn, request_id, "failed", detail=info, reason=text, next_action_at=None)
        return "failed"
    await transition(
        conn,
        request_id,
        "requested",
        detail=info,
        attempt=request.attempt + 1,
        step=0,
        submission="none",
        submission_step=None,
        failures=0,
        reason=reason,
        next_action_at=await _now(conn),
        submitted_at=None,
        confirmed_at=None,
    )
    return "requested"


async def restart_attempt(settings, request_id: int, reason: str, detail: dict | None = None) -> str:
    """A new attempt (or failed at the maximum): the confirmation e-mail never came, say."""

    async def work(conn):
        return await new_attempt(conn, settings, request_id, reason, detail)

    return await run_in_transaction(settings, work)


async def wait_until(settings, request_id: int, when: datetime, *, status: str | None = None, detail=None, **columns):
    """Look at the request again at ``when`` (optionally moving to ``status``)."""

    async def work(conn):
        request = await _lock(conn, request_id)
        if status is not None and status != request.status:
            await transition(conn, request_id, status, detail=detail, next_action_at=when, **columns)
        else:
            await update(conn, request_id, next_action_at=when, **columns)

    await run_in_transaction(settings, work)


async def mark_removed(settings, request_id: int, detail: dict | None = None) -> None:
    """Verification found the listing gone: 'removed' (and its findings)."""

    async def work(conn):
        now = await _now(conn)
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
        request = await _lock(conn, request_id)
        now = await _now(conn)
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


# --- scans ---------------------------------------------------------------------------------------

ACTIVE_REQUESTS_OF_SCAN = f"""
SELECT {COLUMNS} FROM removal_requests r
WHERE coalesce(r.owner, '') = coalesce(%s, '') AND (r.website_id, r.listing_url_index) IN (
    SELECT DISTINCT website_id, listing_url_index FROM findings WHERE scan_id = %s)
FOR UPDATE"""
MOVE_TO_SCAN = "UPDATE removal_requests SET scan_id = %s, updated_at = now() WHERE id = %s"


async def reconcile_scan(settings, scan_id: str) -> dict:
    """After a scan finished: a listing it found again whose request is 'removed' -> 'reappeared' and
    a new attempt (or failed at REMOVAL_MAX_ATTEMPTS); the requests of every listing it found follow
    the newest scan (its findings have the URL and person). Returns {"reappeared": n, "requested": n}."""

    async def work(conn):
        owner_row = await (await conn.execute(SCAN_OWNER, (scan_id,))).fetchone()
        if owner_row is None:
            return {"reappeared": 0, "requested": 0}
        owner = owner_row[0]
        counts = {"reappeared": 0, "requested": 0}
        rows = await (await conn.execute(ACTIVE_REQUESTS_OF_SCAN, (owner, scan_id))).fetchall()
        for request in map(_request, rows):
            await conn.execute(MOVE_TO_SCAN, (scan_id, request.id))
            if request.status == "removed":
                await transition(conn, request.id, "reappeared", detail={"reason": "found_again", "scan": scan_id})
                counts["reappeared"] += 1
                if await new_attempt(conn, settings, request.id, "reappeared") == "requested":
                    counts["requested"] += 1
            elif request.status != "failed":
                params = {"status": "removal_requested", "site": request.website_id}
                params.update(index=request.listing_url_index, owner=owner)
                await conn.execute(UPDATE_FINDINGS.replace("status <> 'dismissed'", "status = 'found'"), params)
        return counts

    return await run_in_transaction(settings, work)
