"""Removal requests as their owner (the API, the page, the CLI) and the metrics see them: read-side
SQL only. Every write goes through crawler/store/removals.py.

A request is shown with its listing URL (decrypted from the findings of the scan the request
follows), its history (``removal_events``, oldest first) and its open task, if any. Every lookup is
scoped to one owner (None: the requests made from the CLI, whose scans have no owner); another
owner's request is simply not found. Pages are keyset pages over ``removal_requests_owner_idx``,
newest first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from crawler.db.pool import run_in_transaction
from crawler.security import context, keyring_from_settings

REQUEST_COLUMNS = """r.id, r.owner, r.scan_id, r.website_id, r.status, r.attempt, r.step, r.reason,
    r.created_at, r.updated_at, r.submitted_at, r.confirmed_at, r.removed_at, r.next_action_at,
    (SELECT f.listing_url_ciphertext FROM findings f
     WHERE f.scan_id = r.scan_id AND f.website_id = r.website_id AND f.listing_url_index = r.listing_url_index
     LIMIT 1),
    (SELECT min(f.id) FROM findings f
     WHERE f.scan_id = r.scan_id AND f.website_id = r.website_id AND f.listing_url_index = r.listing_url_index),
    r.reference"""

LIST_REQUESTS = f"""
SELECT {REQUEST_COLUMNS} FROM removal_requests r
WHERE r.owner IS NOT DISTINCT FROM %(owner)s{{status}}{{after}}
ORDER BY r.id DESC LIMIT %(limit)s"""
STATUS_FILTER = " AND r.status = %(status)s"
AFTER_ID = " AND r.id < %(after)s"
ONE_REQUEST = f"SELECT {REQUEST_COLUMNS} FROM removal_requests r WHERE r.id = %s AND r.owner IS NOT DISTINCT FROM %s"

EVENTS = """
SELECT request_id, from_status, to_status, attempt, step, detail, at FROM removal_events
WHERE request_id = ANY(%s) ORDER BY request_id, id"""

TASK_COLUMNS = "t.id, t.request_id, t.kind, t.instructions, t.url, t.step, t.created_at, t.done_at"
OPEN_TASKS_OF = f"SELECT {TASK_COLUMNS} FROM removal_tasks t WHERE t.request_id = ANY(%s) AND t.done_at IS NULL"
OWNER_TASKS = f"""
SELECT {TASK_COLUMNS} FROM removal_tasks t JOIN removal_requests r ON r.id = t.request_id
WHERE r.owner IS NOT DISTINCT FROM %(owner)s{{open}}
ORDER BY t.id DESC LIMIT %(limit)s"""

# --- metrics: across owners, nothing decrypted -----------------------------------------------------

BY_STATE_AND_SITE = "SELECT status, website_id, count(*) FROM removal_requests GROUP BY status, website_id"
# per site: seconds from an attempt's 'requested' event to its 'removed' event (the verified removal)
TIME_TO_REMOVAL = """
WITH spans AS (
    SELECT r.website_id, extract(epoch FROM removed.at - started.at) AS seconds
    FROM removal_events removed
    JOIN removal_requests r ON r.id = removed.request_id
    JOIN LATERAL (
        SELECT max(e.at) AS at FROM removal_events e
        WHERE e.request_id = removed.request_id AND e.to_status = 'requested' AND e.at <= removed.at
    ) started ON started.at IS NOT NULL
    WHERE removed.to_status = 'removed'
)
SELECT website_id, count(*), avg(seconds), percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds), max(seconds)
FROM spans GROUP BY website_id"""
# removals verified, and how many of those listings came back
REAPPEARANCES = """
SELECT count(*) FILTER (WHERE to_status = 'removed'), count(*) FILTER (WHERE to_status = 'reappeared')
FROM removal_events WHERE to_status IN ('removed', 'reappeared')"""
OPEN_TASKS_BY_KIND = """
SELECT t.kind, r.website_id, count(*) FROM removal_tasks t JOIN removal_requests r ON r.id = t.request_id
WHERE t.done_at IS NULL GROUP BY t.kind, r.website_id"""


@dataclass
class RemovalEvent:
    from_status: str | None
    to_status: str
    attempt: int
    step: int | None
    detail: dict
    at: datetime


@dataclass
class RemovalTask:
    id: int
    request_id: int
    kind: str
    instructions: str
    url: str | None
    step: int
    created_at: datetime
    done_at: datetime | None
    # the request it belongs to (set by list_tasks)
    request: RemovalView | None = None


@dataclass
class RemovalView:
    id: int
    owner: str | None
    scan_id: str
    site: str
    status: str
    attempt: int
    step: int
    reason: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    confirmed_at: datetime | None
    removed_at: datetime | None
    next_action_at: datetime | None
    url: str | None  # decrypted for the owner; None if the scan's findings are gone
    listing_id: int | None  # the listing's smallest finding id in that scan
    reference: str  # the request's token: its e-mail plus-tag (removals.tagged_address) and letters' reference
    history: list[RemovalEvent] = field(default_factory=list)
    task: RemovalTask | None = None

    def __repr__(self) -> str:  # no URL in a traceback or a log
        return f"RemovalView(id={self.id}, site={self.site}, status={self.status})"


def _view(ring, row) -> RemovalView:
    (rid, owner, scan_id, site, status, attempt, step, reason, created, updated, submitted, confirmed, removed,
     next_at, url_ciphertext, listing_id, reference) = row  # fmt: skip
    scan_id = str(scan_id)
    url = ring.decrypt_text(url_ciphertext, context.finding_listing_url(scan_id)) if url_ciphertext else None
    return RemovalView(
        rid, owner, scan_id, site, status, attempt, step, reason, created, updated, submitted, confirmed, removed,
        next_at, url, listing_id, reference,
    )  # fmt: skip


def _task(row) -> RemovalTask:
    return RemovalTask(*row)


async def _with_history(conn, ring, rows) -> list[RemovalView]:
    views = [_view(ring, row) for row in rows]
    if not views:
        return views
    ids = [v.id for v in views]
    by_id = {v.id: v for v in views}
    for request_id, *event in await (await conn.execute(EVENTS, (ids,))).fetchall():
        by_id[request_id].history.append(RemovalEvent(*event))
    for row in await (await conn.execute(OPEN_TASKS_OF, (ids,))).fetchall():
        by_id[row[1]].task = _task(row)
    return views


async def list_removals(
    settings, owner: str | None, limit: int = 20, status: str | None = None, after: int | None = None
) -> list[RemovalView]:
    """``owner``'s removal requests newest first (``limit`` of them, ids below ``after``), with history."""
    sql = LIST_REQUESTS.format(status=STATUS_FILTER if status else "", after=AFTER_ID if after else "")
    params = {"owner": owner, "status": status, "after": after, "limit": limit}
    ring = keyring_from_settings(settings)

    async def load(conn):
        return await _with_history(conn, ring, await (await conn.execute(sql, params)).fetchall())

    return await run_in_transaction(settings, load)


async def get_removal(settings, owner: str | None, request_id: int) -> RemovalView | None:
    """One of ``owner``'s requests with its history; None when it is not theirs (or does not exist)."""
    ring = keyring_from_settings(settings)

    async def load(conn):
        row = await (await conn.execute(ONE_REQUEST, (request_id, owner))).fetchone()
        return None if row is None else (await _with_history(conn, ring, [row]))[0]

    return await run_in_transaction(settings, load)


async def list_tasks(settings, owner: str | None, open_only: bool = True, limit: int = 100) -> list[RemovalTask]:
    """``owner``'s human tasks (open ones by default), newest first, each with its request."""
    sql = OWNER_TASKS.format(open=" AND t.done_at IS NULL" if open_only else "")
    ring = keyring_from_settings(settings)

    async def load(conn):
        tasks = [_task(row) for row in await (await conn.execute(sql, {"owner": owner, "limit": limit})).fetchall()]
        ids = list({t.request_id for t in tasks})
        rows = await (await conn.execute(ONE_REQUEST.replace("r.id = %s", "r.id = ANY(%s)"), (ids, owner))).fetchall()
        requests = {v.id: v for v in await _with_history(conn, ring, rows)}
        for task in tasks:
            task.request = requests.get(task.request_id)
        return tasks

    return await run_in_transaction(settings, load)


@dataclass
class RemovalCounts:
    """What the metrics show (crawler/api/metrics.py)."""

    by_state_and_site: dict[tuple[str, str], int]
    # site -> (removals, mean seconds, median seconds, max seconds)
    time_to_removal: dict[str, tuple[int, float, float, float]]
    removed: int
    reappeared: int
    open_tasks: dict[tuple[str, str], int]  # (kind, site) -> n

    @property
    def reappearance_rate(self) -> float:
        return self.reappeared / self.removed if self.removed else 0.0


async def removal_counts(settings) -> RemovalCounts:
    async def load(conn):
        states = await (await conn.execute(BY_STATE_AND_SITE)).fetchall()
        times = await (await conn.execute(TIME_TO_REMOVAL)).fetchall()
        removed, reappeared = await (await conn.execute(REAPPEARANCES)).fetchone()
        tasks = await (await conn.execute(OPEN_TASKS_BY_KIND)).fetchall()
        return states, times, removed, reappeared, tasks

    states, times, removed, reappeared, tasks = await run_in_transaction(settings, load)
    return RemovalCounts(
        {(status, site): int(n) for status, site, n in states},
        {site: (int(n), float(mean), float(median), float(top)) for site, n, mean, median, top in times},
        int(removed or 0),
        int(reappeared or 0),
        {(kind, site): int(n) for kind, site, n in tasks},
    )


# --- maintenance re-scans (crawler/worker/removal_jobs.py) ------------------------------------------

# a monitored person: an owner and a target (by its name's blind index) with removal requests not
# failed; due when their newest scan is finished and older than the interval
PEOPLE_DUE = """
WITH people AS (
    SELECT DISTINCT s.owner, s.target_name_index FROM removal_requests r JOIN scans s ON s.id = r.scan_id
    WHERE r.status <> 'failed' AND s.target_name_index IS NOT NULL
)
SELECT p.owner, newest.id FROM people p
CROSS JOIN LATERAL (
    SELECT s.id, s.status, coalesce(s.finished_at, s.created_at) AS at FROM scans s
    WHERE s.owner IS NOT DISTINCT FROM p.owner AND s.target_name_index = p.target_name_index
    ORDER BY s.created_at DESC, s.id DESC LIMIT 1
) newest
WHERE newest.status NOT IN ('pending', 'running') AND newest.at <= now() - make_interval(secs => %s)"""


@dataclass(frozen=True)
class MonitoredPerson:
    owner: str | None
    scan_id: str  # their newest scan: its target and sites are scanned again


async def people_due_for_rescan(settings, interval_seconds: float) -> list[MonitoredPerson]:
    async def load(conn):
        return await (await conn.execute(PEOPLE_DUE, (float(interval_seconds),))).fetchall()

    return [MonitoredPerson(owner, str(scan_id)) for owner, scan_id in await run_in_transaction(settings, load)]


TASK_REQUEST = """
SELECT t.request_id FROM removal_tasks t JOIN removal_requests r ON r.id = t.request_id
WHERE t.id = %s AND r.owner IS NOT DISTINCT FROM %s"""


async def task_request(settings, owner: str | None, task_id: int) -> int | None:
    """The request id of ``owner``'s task (open or done); None when it is not theirs."""

    async def load(conn):
        return await (await conn.execute(TASK_REQUEST, (task_id, owner))).fetchone()

    row = await run_in_transaction(settings, load)
    return None if row is None else row[0]
