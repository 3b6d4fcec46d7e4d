"""Versioned plain-SQL migrations (crawler/db/migrations/NNNN_name.sql).

Each file is applied once, in its own transaction, and recorded in
``schema_migrations`` with a checksum; an applied file that was edited
afterwards is an error rather than a silent divergence. An advisory lock makes
concurrent runs (several workers starting at once) wait for each other.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
from dataclasses import dataclass

import psycopg

from crawler.config import ConfigError, redact_url

# through importlib.resources: scrapyd runs the project from a zipped egg, where
# Path(__file__) points inside the archive and finds nothing
MIGRATIONS_DIR = importlib.resources.files("crawler.db") / "migrations"
FILENAME_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
LOCK_ID = 0x6372_6177_6C65_72  # "crawler": one advisory lock for schema changes

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


class MigrationError(Exception):
    pass


@dataclass(frozen=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def __str__(self) -> str:
        return f"{self.version}_{self.name}"


def discover(directory=MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory`` (a Path or an importlib.resources Traversable)."""
    migrations = []
    for path in sorted((p for p in directory.iterdir() if p.name.endswith(".sql")), key=lambda p: p.name):
        match = FILENAME_RE.match(path.name)
        if not match:
            raise MigrationError(f"{path.name}: migration files are named NNNN_name.sql")
        migrations.append(Migration(match[1], match[2], path.read_text()))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError("two migration files share a version number")
    return migrations


def connect(url: str, timeout: float = 5) -> psycopg.Connection:
    """A connection, or ConfigError naming DATABASE_URL with the server's first line."""
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout)))
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("DATABASE_URL", f"cannot connect to {redact_url(url)}: {reason}") from None


def _applied(conn: psycopg.Connection) -> dict[str, str]:
    conn.execute(CREATE_LEDGER)
    return dict(conn.execute("SELECT version, checksum FROM schema_migrations").fetchall())


def _check_unchanged(migrations: list[Migration], applied: dict[str, str]) -> None:
    for migration in migrations:
        if migration.version in applied and applied[migration.version] != migration.checksum:
            raise MigrationError(f"{migration}.sql was edited after it was applied; add a new migration instead")


def pending(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    migrations = discover() if migrations is None else migrations
    applied = _applied(conn)
    _check_unchanged(migrations, applied)
    return [m for m in migrations if m.version not in applied]


def migrate(conn: psycopg.Connection, migrations: list[Migration] | None = None) -> list[Migration]:
    """Apply what is pending; returns what was applied (empty when up to date)."""
    migrations = discover() if migrations is None else migrations
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_ID,))
    try:
        todo = pending(conn, migrations)
        for migration in todo:
            with conn.transaction():
                conn.execute(migration.sql)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, migration.checksum),
                )
        return todo
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_ID,))
