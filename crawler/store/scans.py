"""Scans: create (target encrypted, ``pending``), load the target, start, progress, finish.

The target (who is searched for) is one encrypted JSON document in ``scans.target_ciphertext``
(AES-256-GCM, bound to the scan id) with a blind index of the full name; nothing else about the
person is stored with the scan. Async functions run on the reactor (psycopg_pool); the ``*_sync``
ones are for code that runs before it (the crawl command's argument check, spider construction).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

from crawler.db.embedded import database_url
from crawler.db.migrate import connect
from crawler.db.pool import run_in_transaction
from crawler.security import context, keyring_from_settings
from crawler.spider_args import PersonQuery, SpiderArgumentError, parse_scan_id
from crawler.store import stats
from crawler.store.jobs import cancel_scan, defer_scan_job

UPSERT_WEBSITE = """
INSERT INTO websites (id, name, base_url, render_mode, enabled, definition, definition_sha256, opt_out)
VALUES (%s, %s, %s, %s, %s, coalesce(%s::jsonb, '{}'::jsonb), %s, %s::jsonb)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, base_url = EXCLUDED.base_url,
    render_mode = EXCLUDED.render_mode, enabled = EXCLUDED.enabled, definition = EXCLUDED.definition,
    definition_sha256 = EXCLUDED.definition_sha256, opt_out = EXCLUDED.opt_out, updated_at = now()"""

CREATE_SCAN = """
INSERT INTO scans (id, status, spider, target_ciphertext, target_name_index, sites)
VALUES (%s, 'pending', %s, %s, %s, %s)"""

LOAD_SCAN = "SELECT spider, status, sites, target_ciphertext FROM scans WHERE id = %s"

# a scan created beforehand (pending) becomes running; a shell crawl's scan is created running
START_SCAN = """
INSERT INTO scans (id, status, spider, target_ciphertext, target_name_index, sites, definitions, started_at)
VALUES (%s, 'running', %s, %s, %s, %s, %s, now())
ON CONFLICT (id) DO UPDATE SET status = 'running', started_at = coalesce(scans.started_at, now()),
    definitions = EXCLUDED.definitions, finished_at = NULL, error = NULL, findings_summary = NULL,
    updated_at = now()"""

UPDATE_COUNTERS = """
UPDATE scans SET counters = %s, updated_at = now() WHERE id = %s AND status = 'running'"""

# the crawl's findings are all written by now (Scrapy closes the item pipelines, and with them the
# BulkWriter's last flush, before it sends spider_closed): their counts are kept on the row
FINISH_SCAN = f"""
UPDATE scans SET status = %(status)s, error = %(error)s, counters = %(counters)s, finished_at = now(),
    updated_at = now(), findings_summary = {stats.summary_of_scan("%(status)s", "%(id)s")}
WHERE id = %(id)s"""


@dataclass(frozen=True)
class StoredScan:
    id: str
    spider: str
    status: str
    sites: list[str]
    query: PersonQuery | None  # None: the row has no target (created by a test or an older version)


def seal_target(ring, scan_id: str, query: PersonQuery) -> tuple[bytes, bytes]:
    """(ciphertext, blind index of the full name) of a scan's target."""
    return ring.encrypt(orjson.dumps(query.as_dict()), context.scan_target(str(scan_id))), ring.blind_index(
        query.full_name
    )


def open_target(ring, scan_id: str, ciphertext: bytes) -> PersonQuery:
    return PersonQuery(**orjson.loads(ring.decrypt(bytes(ciphertext), context.scan_target(str(scan_id)))))


def _stored(settings, scan_id: str, row) -> StoredScan | None:
    if row is None:
        return None
    spider, status, sites, ciphertext = row
    query = open_target(keyring_from_settings(settings), scan_id, ciphertext) if ciphertext is not None else None
    return StoredScan(str(scan_id), spider, status, list(sites or []), query)


async def create_scan(
    settings, query: PersonQuery, spider: str, sites: Sequence[str], scan_id: str | None = None
) -> str:
    """A new ``pending`` scan with its target encrypted; returns its id."""
    scan_id = str(scan_id or uuid.uuid4())
    ciphertext, name_index = seal_target(keyring_from_settings(settings), scan_id, query)
    await run_in_transaction(
        settings, lambda conn: conn.execute(CREATE_SCAN, (scan_id, spider, ciphertext, name_index, list(sites)))
    )
    return scan_id


async def load_scan(settings, scan_id: str) -> StoredScan | None:
    async def load(conn):
        return await (await conn.execute(LOAD_SCAN, (scan_id,))).fetchone()

    return _stored(settings, scan_id, await run_in_transaction(settings, load))


def load_scan_sync(settings, scan_id: str) -> StoredScan | None:
    """The scan and its decrypted target, before the reactor runs (a blocking connection)."""
    with connect(database_url(settings), settings.getfloat("PG_CONNECT_TIMEOUT")) as conn:
        row = conn.execute(LOAD_SCAN, (scan_id,)).fetchone()
    return _stored(settings, scan_id, row)


async def start_scan(
    settings,
    scan_id: str,
    spider: str,
    query: PersonQuery,
    sites: Sequence[str],
    websites: Iterable[tuple] = (),
) -> None:
    """Mark the scan running (creating it, target encrypted, when a shell crawl has no row yet),
    mirror its site definitions into ``websites`` (rows of crawler.scans.Website.row()) and record
    which version (sha256) of each definition it runs with."""
    ciphertext, name_index = seal_target(keyring_from_settings(settings), scan_id, query)
    websites = list(websites)
    definitions = orjson.dumps({row[0]: row[6] for row in websites if row[6]}).decode()

    async def start(conn):
        for row in websites:
            await conn.execute(UPSERT_WEBSITE, row)
        await conn.execute(START_SCAN, (scan_id, spider, ciphertext, name_index, list(sites), definitions))

    await run_in_transaction(settings, start)


async def update_counters(settings, scan_id: str, counters: dict) -> None:
    """Progress: the per-site counters of a running scan."""
    values = (orjson.dumps(counters).decode(), scan_id)
    await run_in_transaction(settings, lambda conn: conn.execute(UPDATE_COUNTERS, values))


async def finish_scan(settings, scan_id: str, status: str, error: str | None, counters: dict) -> None:
    """End the scan with ``status`` and its final counters, and summarise its findings by site and
    type (``scans.findings_summary``, read by crawler.store.stats)."""
    values = {"status": status, "error": error, "counters": orjson.dumps(counters).decode(), "id": scan_id}
    await run_in_transaction(settings, lambda conn: conn.execute(FINISH_SCAN, values))


def load_stored_scan(kwargs: dict, settings=None, spider: str | None = None) -> StoredScan:
    """The stored scan of ``-a scan_id`` (crawler.store.scans.StoredScan) with its decrypted target;
    SpiderArgumentError when there is none, it has no target or belongs to another spider."""
    if settings is None:
        from scrapy.utils.project import get_project_settings

        settings = get_project_settings()
    scan_id = parse_scan_id(kwargs)
    scan = load_scan_sync(settings, scan_id)
    if scan is None:
        raise SpiderArgumentError("scan_id", f"no such scan {scan_id}")
    if scan.query is None:
        raise SpiderArgumentError("scan_id", f"scan {scan_id} has no stored target")
    if spider is not None and scan.spider != spider:
        raise SpiderArgumentError("scan_id", f"scan {scan_id} was created for spider {scan.spider!r}, not {spider!r}")
    return scan


# --- scans requested through the API: owner-scoped ----------------------------------------------

REQUEST_SCAN = """
INSERT INTO scans (id, status, spider, target_ciphertext, target_name_index, sites, owner, priority,
                   idempotency_key, request_index)
VALUES (%s, 'pending', %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (owner, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, status"""

IDEMPOTENT_SCAN = "SELECT id, status, request_index FROM scans WHERE owner = %s AND idempotency_key = %s"

OWNED_COLUMNS = """id, status, priority, sites, counters, error, created_at, started_at, finished_at, updated_at,
    attempts, definitions, cancel_requested_at, target_ciphertext"""

GET_OWNED = f"SELECT {OWNED_COLUMNS} FROM scans WHERE id = %(id)s AND owner = %(owner)s"

# keyset pagination over scans_owner_created_idx / scans_owner_status_created_idx: the filter and the
# cursor are static fragments, so each combination is one plan
LIST_OWNED = """
SELECT {columns} FROM scans WHERE owner = %(owner)s{status}{after}
ORDER BY created_at DESC, id DESC LIMIT %(limit)s"""
STATUS_FILTER = " AND status = %(status)s"
AFTER_CURSOR = " AND (created_at, id) < (%(created_at)s, %(after_id)s)"

OWNS_SCAN = "SELECT status FROM scans WHERE id = %s AND owner = %s"


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with another request body."""


@dataclass(frozen=True)
class OwnedScan:
    """A scan as its owner sees it (the target decrypted when asked for)."""

    id: str
    status: str
    priority: str
    sites: list[str]
    counters: dict
    error: str | None
    created_at: object
    started_at: object
    finished_at: object
    updated_at: object
    attempts: int
    definitions: dict
    cancel_requested_at: object
    query: PersonQuery | None


def _owned(ring, row) -> OwnedScan:
    *fields, ciphertext = row
    scan_id = str(fields[0])
    query = open_target(ring, scan_id, ciphertext) if ring is not None and ciphertext is not None else None
    return OwnedScan(scan_id, *fields[1:3], list(fields[3] or []), *fields[4:], query)


def request_digest(ring, request: dict) -> bytes:
    """Blind index (HMAC) of a request body: compares bodies without storing them."""
    return ring.keyed_digest(orjson.dumps(request, option=orjson.OPT_SORT_KEYS))


async def request_scan(
    settings,
    owner: str,
    query: PersonQuery,
    sites: Sequence[str],
    priority: str,
    idempotency_key: str | None = None,
    request: dict | None = None,
    spider: str = "scan",
) -> tuple[str, str, bool]:
    """A pending scan for ``owner`` and its job, queued in the same transaction: (id, status,
    created). With ``idempotency_key``, the scan that key created before is returned instead when
    ``request`` (the validated body) is the same; IdempotencyConflict when it is not."""

    ring = keyring_from_settings(settings)
    scan_id = str(uuid.uuid4())
    ciphertext, name_index = seal_target(ring, scan_id, query)
    digest = request_digest(ring, request or {}) if idempotency_key is not None else None
    values = (scan_id, spider, ciphertext, name_index, list(sites), owner, priority, idempotency_key, digest)

    async def create(conn):
        row = await (await conn.execute(REQUEST_SCAN, values)).fetchone()
        if row is not None:
            await defer_scan_job(conn, scan_id, priority)
            return scan_id, row[1], True
        existing_id, status, existing_digest = await (
            await conn.execute(IDEMPOTENT_SCAN, (owner, idempotency_key))
        ).fetchone()
        if bytes(existing_digest or b"") != digest:
            raise IdempotencyConflict(idempotency_key)
        return str(existing_id), status, False

    return await run_in_transaction(settings, create)


async def get_scan(settings, owner: str, scan_id: str, with_target: bool = True) -> OwnedScan | None:
    """The scan if ``owner`` owns it; None for a missing scan and another user's alike."""

    async def load(conn):
        return await (await conn.execute(GET_OWNED, {"id": scan_id, "owner": owner})).fetchone()

    row = await run_in_transaction(settings, load)
    if row is None:
        return None
    return _owned(keyring_from_settings(settings) if with_target else None, row)


async def list_scans(
    settings, owner: str, limit: int, status: str | None = None, after: tuple | None = None
) -> list[OwnedScan]:
    """``owner``'s scans newest first, ``limit`` of them after the keyset ``after`` = (created_at, id)."""
    sql = LIST_OWNED.format(
        columns=OWNED_COLUMNS,
        status=STATUS_FILTER if status else "",
        after=AFTER_CURSOR if after else "",
    )
    params = {"owner": owner, "status": status, "limit": limit}
    if after:
        params.update(created_at=after[0], after_id=after[1])

    async def load(conn):
        return await (await conn.execute(sql, params)).fetchall()

    ring = keyring_from_settings(settings)
    return [_owned(ring, row) for row in await run_in_transaction(settings, load)]


async def cancel_owned_scan(settings, owner: str, scan_id: str) -> str | None:
    """Cancel ``owner``'s scan (crawler.store.jobs.cancel_scan); its status after, None if not theirs."""

    async def cancel(conn):
        if await (await conn.execute(OWNS_SCAN, (scan_id, owner))).fetchone() is None:
            return None
        return await cancel_scan(conn, scan_id)

    return await run_in_transaction(settings, cancel)
