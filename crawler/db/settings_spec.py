"""Settings of the database layer: the URL (embedded default), the pool and BulkWriter."""

from __future__ import annotations

from urllib.parse import urlsplit

from crawler.setting import Component, Setting, redact_url


def check_database_url(value) -> None:
    if not value:
        return  # embedded PostgreSQL
    import psycopg.conninfo  # only here: reading settings should not load the driver

    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"scheme must be postgresql://, got {parts.scheme or 'none'!r}")
    try:
        port = parts.port
        psycopg.conninfo.conninfo_to_dict(value)
    except (ValueError, psycopg.Error) as exc:
        raise ValueError(f"malformed URL {redact_url(value)!r} ({exc})") from None
    if port == 0:
        raise ValueError("port 0 is not a valid port")


DATABASE = Component(
    "PostgreSQL",
    "crawler/db/",
    (
        Setting(
            "DATABASE_URL",
            "str",
            "",
            "PostgreSQL URL. Empty: embedded PostgreSQL under `DATA_DIR/postgres`, migrated automatically. "
            "A server you name must be migrated with `python -m crawler.db migrate` (the crawl refuses to start "
            "on a schema that is behind).",
            check=check_database_url,
            accepts="`postgresql://` URL or empty",
        ),
        Setting(
            "DATA_DIR",
            "str",
            ".data",
            "local state: embedded database, development keys, screenshots",
            accepts="directory",
        ),
        Setting(
            "PG_POOL_MIN_SIZE",
            "int",
            "1",
            "async connection pool (psycopg_pool): connections kept open per process",
            min=1,
            at_most="PG_POOL_MAX_SIZE",
        ),
        Setting("PG_POOL_MAX_SIZE", "int", "4", "async connection pool: most connections per process", min=1),
        Setting(
            "PG_CONNECT_TIMEOUT",
            "number",
            "5",
            "seconds to wait for PostgreSQL (at start, and for a pooled connection: 6 times it)",
            above=0,
        ),
        Setting("PG_BATCH_ROWS", "int", "1000", "rows buffered per table before a bulk write", min=1),
        Setting("PG_FLUSH_SECONDS", "number", "2", "buffered rows are written at least this often (seconds)", above=0),
        Setting(
            "PG_MAX_BUFFER_ROWS",
            "int",
            "50000",
            "backpressure: `process_item` waits while this many rows are buffered",
            min=1,
        ),
        Setting(
            "PG_RETRY_SECONDS",
            "number",
            "120",
            "transient database errors (connection lost, server restarting) are retried with backoff for this "
            "long; rows stay buffered until committed",
            above=0,
        ),
    ),
)

COMPONENTS = (DATABASE,)
