"""BulkWriter against the real PostgreSQL: idempotent COPY upserts, checkpoints in
the same transaction, retries through lost connections, bounded buffers."""

import asyncio
import datetime as dt

import psycopg
import pytest
from scrapy.utils.test import get_crawler

from crawler import settings as project_settings
from crawler.db.pool import close_pools
from crawler.db.writer import BulkWriter, Checkpoint, WriteFailed

COLUMNS = ("id", "type", "occurred_at", "payload", "source")
T0 = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def make_writer(database_url, **overrides):
    values = {k: getattr(project_settings, k) for k in dir(project_settings) if k.isupper()}
    values.update(DATABASE_URL=database_url, **overrides)
    crawler = get_crawler(settings_dict=values)
    return BulkWriter.for_crawler(crawler), crawler.stats


def events(source, start, count):
    return [
        (f"{source}-{n}", "click", T0 + dt.timedelta(seconds=n), '{"n": %d}' % n, source)
        for n in range(start, start + count)
    ]


def count(db, source):
    return db.execute("SELECT count(*) FROM events WHERE source = %s", (source,)).fetchone()[0]


async def test_flush_on_size_and_close_and_replays_add_nothing(database_url, db):
    writer, stats = make_writer(database_url, PG_BATCH_ROWS=100, PG_FLUSH_SECONDS=60)
    await writer.open()
    await writer.add("events", COLUMNS, events("w1", 0, 150))
    await writer.background  # reached the batch size: flushed in the background at once
    assert count(db, "w1") == 150
    await writer.add("events", COLUMNS, events("w1", 100, 60))  # 50 replayed, 10 new
    assert count(db, "w1") == 150  # below the batch size: still buffered
    await writer.close()
    await close_pools()
    assert count(db, "w1") == 160
    assert stats.get_value("pg/rows_written/events") == 160
    assert stats.get_value("pg/rows_duplicate/events") == 50


async def test_flush_on_age(database_url, db):
    writer, _ = make_writer(database_url, PG_BATCH_ROWS=1000, PG_FLUSH_SECONDS=0.2)
    await writer.open()
    await writer.add("events", COLUMNS, events("w2", 0, 5))
    await asyncio.sleep(0.6)
    assert count(db, "w2") == 5
    await writer.close()
    await close_pools()


async def test_checkpoint_commits_with_its_rows_and_sums_counts(database_url, db):
    writer, _ = make_writer(database_url, PG_BATCH_ROWS=1000, PG_FLUSH_SECONDS=60)
    await writer.open()
    await writer.add("events", COLUMNS, events("w3", 0, 10), Checkpoint("w3", "p0", "c1", T0, rows=10))
    await writer.add("events", COLUMNS, events("w3", 10, 5), Checkpoint("w3", "p0", "c2", T0, rows=5))
    await writer.close()
    await close_pools()
    row = db.execute("SELECT cursor, rows_committed FROM ingest_checkpoints WHERE source = 'w3'").fetchone()
    assert row == ("c2", 15) and count(db, "w3") == 15


async def test_a_failing_write_commits_neither_rows_nor_checkpoint(database_url, db):
    writer, stats = make_writer(database_url, PG_BATCH_ROWS=1000, PG_FLUSH_SECONDS=60)
    await writer.open()
    bad = [("w4-bad", "click", T0, "not json", "w4")]
    await writer.add("events", COLUMNS, events("w4", 0, 3) + bad, Checkpoint("w4", "p0", "c1", T0, rows=4))
    with pytest.raises(WriteFailed, match="InvalidTextRepresentation"):
        await writer.flush()
    assert count(db, "w4") == 0
    assert db.execute("SELECT count(*) FROM ingest_checkpoints WHERE source = 'w4'").fetchone()[0] == 0
    assert writer.buffered == 4  # kept, not dropped
    assert stats.get_value("pg/write_failures") == 1
    writer.buffers.clear()
    writer.checkpoints.clear()
    await writer.close()
    await close_pools()


async def test_rows_survive_connections_killed_mid_crawl(database_url, db):
    """The server drops the writer's connections again and again; every row lands once."""
    writer, stats = make_writer(database_url, PG_BATCH_ROWS=500, PG_FLUSH_SECONDS=60, PG_POOL_MAX_SIZE=2)
    await writer.open()

    async def killer():
        with psycopg.connect(database_url, autocommit=True) as admin:
            for _ in range(6):
                await asyncio.sleep(0.05)
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = 'crawler'"
                )

    async def producer():
        for start in range(0, 20_000, 250):
            await writer.add("events", COLUMNS, events("w5", start, 250))
            await asyncio.sleep(0.002)

    await asyncio.gather(killer(), producer())
    await writer.close()
    await close_pools()
    assert count(db, "w5") == 20_000
    assert stats.get_value("pg/retries", 0) >= 1


async def test_buffer_is_bounded_while_the_database_is_blocked(database_url, db):
    """With the table locked, add() stops returning instead of buffering without end."""
    writer, _ = make_writer(database_url, PG_BATCH_ROWS=100, PG_MAX_BUFFER_ROWS=300, PG_FLUSH_SECONDS=60)
    await writer.open()
    locker = await psycopg.AsyncConnection.connect(database_url)
    await locker.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
    produced = 0

    async def producer():
        nonlocal produced
        for start in range(0, 5000, 50):
            await writer.add("events", COLUMNS, events("w6", start, 50))
            produced += 50

    task = asyncio.create_task(producer())
    await asyncio.sleep(1.0)
    assert produced <= 300 + 100  # stalled by the lock, memory bounded
    await locker.rollback()
    await locker.close()
    await asyncio.wait_for(task, 30)
    await writer.close()
    await close_pools()
    assert count(db, "w6") == 5000


async def test_a_page_added_after_a_failed_background_flush_is_kept_not_skipped(database_url, db):
    writer, _ = make_writer(database_url, PG_BATCH_ROWS=1000, PG_FLUSH_SECONDS=60)
    await writer.open()
    writer.failure = WriteFailed("an earlier background flush gave up")  # as _flush_in_background leaves it
    with pytest.raises(WriteFailed):
        await writer.add("events", COLUMNS, events("w9", 0, 3), Checkpoint("w9", "p0", "c1", T0, rows=3))
    # page N+1 then succeeds: its checkpoint must not commit without page N's rows
    await writer.add("events", COLUMNS, events("w9", 3, 2), Checkpoint("w9", "p0", "c2", T0, rows=2))
    await writer.close()
    await close_pools()
    row = db.execute("SELECT cursor, rows_committed FROM ingest_checkpoints WHERE source = 'w9'").fetchone()
    assert row == ("c2", 5) and count(db, "w9") == 5
