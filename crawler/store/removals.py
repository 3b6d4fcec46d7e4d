"""Removal requests: one per owner and listing, carried through its site's opt-out flow.

The state machine (``ALLOWED``), the requests and their history live here (a flow's progress and
the human tasks: ``removal_flow.py``); the optout spider (crawler/removal/, spiders/optout.py), the API and the
CLI call these functions. Each status change goes through ``transition``, which refuses a move the
table does not allow, writes the history row and keeps the listing's findings in step.

Exactly once: ``begin_submission`` (crawler/store/removal_flow.py, with the rest of a flow's progress)
moves ``submission`` from 'none' to 'sending' in its own committed transaction before a form is posted
or a letter sent, ``finish_submission`` records the answer. A
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
        "reference",
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


def hours(value: float) -> timedelta:
    return timedelta(seconds=float(value) * 3600)


async def database_now(conn) -> datetime:
    return (await (await conn.execute("SELECT now()")).fetchone())[0]


async def lock_request(conn, request_id: int) -> RemovalRequest:
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
    request = await lock_request(conn, request_id)
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


# --- the optout crawl's side (its progress: crawler/store/removal_flow.py) ---------------------------


async def due_requests(settings, limit: int, now: datetime | None = None) -> list[int]:
    """Ids of active requests whose next action is due (``next_action_at`` <= now), oldest first."""

    async def work(conn):
        moment = now or await database_now(conn)
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
                await transition(
                    conn, request_id, "submitted", detail=detail, submitted_at=await database_now(conn), **columns
                )
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


async def new_attempt(conn, settings, request_id: int, reason: str, detail: dict | None = None) -> str:
    """Within the caller's transaction: a new attempt (requested, attempt+1, step 0, no submission)
    while attempt < REMOVAL_MAX_ATTEMPTS, else 'failed' with ``reason``. Returns the status after."""
    request = await lock_request(conn, request_id)
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
        next_action_at=await database_now(conn),
        submitted_at=None,
        confirmed_at=None,
        # a new address tag: the broker's e-mail to an earlier attempt (an old link) never confirms this one
        reference=new_reference(),
    )
    return "requested"


# --- scans ---------------------------------------------------------------------------------------

ACTIVE_REQUESTS_OF_SCAN = f"""
SELECT {COLUMNS} FROM removal_requests r
WHERE coalesce(r.owner, '') = coalesce(%s, '') AND (r.website_id, r.listing_url_index) IN (
    SELECT DISTINCT website_id, listing_url_index FROM findings WHERE scan_id = %s)
FOR UPDATE"""
MOVE_TO_SCAN = "UPDATE removal_requests SET scan_id = %s, updated_at = now() WHERE id = %s"
LISTING_FOUND_AT = """
SELECT max(found_at) FROM findings WHERE scan_id = %s AND website_id = %s AND listing_url_index = %s"""


async def reconcile_scan(settings, scan_id: str) -> dict:
    """After a scan finished: a listing it found again (after its removal was verified: a scan that
    read it earlier and finished later proves nothing) whose request is 'removed' -> 'reappeared' and
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
            if request.status == "removed":
                found = (
                    await (
                        await conn.execute(LISTING_FOUND_AT, (scan_id, request.website_id, request.listing_url_index))
                    ).fetchone()
                )[0]
                if found is not None and request.removed_at is not None and found <= request.removed_at:
                    continue  # a scan that read the listing before its removal was verified: nothing new
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
