import subprocess
import sys

import psycopg
import pytest

from crawler.config import ConfigError
from crawler.db.migrate import Migration, MigrationError, connect, discover, migrate, pending
from support import ROOT, create_database, drop_database

TABLES = {"scans", "websites", "findings", "screenshots", "events", "ingest_checkpoints", "dead_letters"}


@pytest.fixture
def empty_db():
    name, url = create_database(migrated=False)
    yield url
    drop_database(name)


def schema_dump(url):
    dump = subprocess.run(["pg_dump", "--schema-only", url], capture_output=True, text=True, check=True).stdout
    # recent pg_dump wraps its output in \restrict <random key> lines
    return [line for line in dump.splitlines() if not line.startswith(("\\restrict", "\\unrestrict"))]


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "crawler.db", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


@pytest.mark.integration
def test_migrate_twice_applies_once_and_changes_nothing(empty_db):
    first = run_cli("migrate", "-s", f"DATABASE_URL={empty_db}")
    names = ", ".join(map(str, discover()))
    assert first.returncode == 0 and f"applied {len(discover())} migration(s): {names}" in first.stdout
    before = schema_dump(empty_db)
    second = run_cli("migrate", "-s", f"DATABASE_URL={empty_db}")
    assert second.returncode == 0 and "up to date" in second.stdout
    assert schema_dump(empty_db) == before
    status = run_cli("status", "-s", f"DATABASE_URL={empty_db}")
    assert "applied  0001_initial" in status.stdout
    with psycopg.connect(empty_db) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert TABLES | {"schema_migrations"} <= tables
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(discover())


def test_unreachable_database_is_one_clear_line():
    result = run_cli("migrate", "-s", "DATABASE_URL=postgresql://nobody:pw@127.0.0.1:1/x")
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: DATABASE_URL: cannot connect to postgresql://nobody:***@127.0.0.1:1/x")


@pytest.mark.integration
def test_edited_migration_is_refused(empty_db, tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x int);")
    with connect(empty_db) as conn:
        assert [str(m) for m in migrate(conn, discover(tmp_path))] == ["0001_first"]
        edited = [Migration("0001", "first", "CREATE TABLE a (x bigint);")]
        with pytest.raises(MigrationError, match="edited after it was applied"):
            pending(conn, edited)


@pytest.mark.integration
def test_pending_lists_new_files_and_bad_names_are_refused(empty_db, tmp_path):
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE a (x int);")
    with connect(empty_db) as conn:
        migrate(conn, discover(tmp_path))
        (tmp_path / "0002_second.sql").write_text("CREATE TABLE b (x int);")
        assert [str(m) for m in pending(conn, discover(tmp_path))] == ["0002_second"]
    (tmp_path / "3_bad.sql").write_text("")
    with pytest.raises(MigrationError, match=r"NNNN_name\.sql"):
        discover(tmp_path)


def test_connect_error_names_database_url():
    with pytest.raises(ConfigError, match=r"^DATABASE_URL: cannot connect"):
        connect("postgresql://nobody@127.0.0.1:1/x", timeout=1)
