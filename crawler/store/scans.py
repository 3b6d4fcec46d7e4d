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
    definitions = EXCLUDED.definitions, finished_at = NULL, error = NULL, updated_at = now()"""

UPDATE_COUNTERS = """
UPDATE scans SET counters = %s, updated_at = now() WHERE id = %s AND status = 'running'"""

FINISH_SCAN = """
UPDATE scans SET status = %s, error = %s, counters = %s, finished_at = now(), updated_at = now()
WHERE id = %s"""


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
    values = (status, error, orjson.dumps(counters).decode(), scan_id)
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
