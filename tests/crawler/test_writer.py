"""BulkWriter against the real PostgreSQL: idempotent COPY upserts, checkpoints in
the same transaction, retries through lost connections, bounded buffers."""

import asyncio
import datetime as dt
import time

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
    """Rows below the batch size are written once the oldest has waited PG_FLUSH_SECONDS, without a close."""
    writer, _ = make_writer(database_url, PG_BATCH_ROWS=1000, PG_FLUSH_SECONDS=0.2)
    flushed = asyncio.Event()
    writer.flush_observers.append(lambda seconds, rows: flushed.set())
    await writer.open()
    added = time.monotonic()
    await writer.add("events", COLUMNS, events("w2", 0, 5))
    assert count(db, "w2") == 0  # below the batch size: buffered
    await asyncio.wait_for(flushed.wait(), 60)  # nothing but the age can flush it
    assert time.monotonic() - added >= 0.2 and count(db, "w2") == 5
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


async def test_a_completed_partition_stays_completed_when_an_earlier_page_is_written_again(database_url, db):
    """A lease returned by a killed worker can bring a partition's earlier page back after its last one."""
    for cursor, rows, completed in (("c1", 10, False), (None, 5, True), ("c1", 0, False)):
        writer, _ = make_writer(database_url, PG_BATCH_ROWS=1000, PG_FLUSH_SECONDS=60)
        await writer.open()
        checkpoint = Checkpoint("w10", "p0", cursor, T0, rows=rows, completed=completed)
        await writer.add("events", COLUMNS, events("w10", 0, 10), checkpoint)
        await writer.close()
        await close_pools()
    row = db.execute("SELECT cursor, rows_committed, completed FROM ingest_checkpoints WHERE source = 'w10'").fetchone()
    assert row == (None, 15, True)


def test_a_completed_checkpoint_merged_with_an_earlier_page_stays_completed():
    """Both in one buffer: the merge keeps the end, as the database upsert does."""
    done = Checkpoint("w11", "p0", None, T0, rows=5, completed=True, state={"end": True})
    merged = done.merge(Checkpoint("w11", "p0", "c1", T0, rows=0))
    assert (merged.cursor, merged.rows, merged.completed, merged.state) == (None, 5, True, {"end": True})
    assert Checkpoint("w11", "p0", "c1", T0, rows=2).merge(done).completed


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
    """The server drops the writer's connection inside flushes, again and again; every row lands once."""
    writer, stats = make_writer(
        database_url, PG_BATCH_ROWS=500, PG_MAX_BUFFER_ROWS=1000, PG_FLUSH_SECONDS=60, PG_POOL_MAX_SIZE=2
    )
    await writer.open()
    admin = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    attempts, killed = 0, []

    async def kill_first_attempt_of_six_flushes(conn):
        # a flush's rows are written, its transaction not yet committed: the server ends the session
        nonlocal attempts
        attempts += 1
        if attempts % 2 and len(killed) < 6:  # odd calls: a flush's first attempt (its retry passes)
            pid = conn.info.backend_pid
            terminated = await admin.execute("SELECT pg_terminate_backend(%s, 30000)", (pid,))
            assert (await terminated.fetchone())[0] is True  # waited until the backend is gone
            killed.append(pid)

    writer.before_commit.append(kill_first_attempt_of_six_flushes)
    for start in range(0, 20_000, 250):  # at most 1,250 rows a flush: at least 16 flushes
        await writer.add("events", COLUMNS, events("w5", start, 250))
        await asyncio.sleep(0)  # the engine yields between pages: background flushes run meanwhile
    await writer.close()
    await close_pools()
    await admin.close()
    assert len(killed) == 6 and stats.get_value("pg/retries") == 6
    stored = db.execute("SELECT count(*), count(DISTINCT id) FROM events WHERE source = 'w5'").fetchone()
    assert stored == (20_000, 20_000)
    # each killed attempt was rolled back whole: its retry inserted every row, none was a duplicate
    assert stats.get_value("pg/rows_written/events") == 20_000
    assert stats.get_value("pg/rows_duplicate/events") == 0


def blocked_on_a_lock(db) -> bool:
    """Whether a writer's statement waits for a table lock in PostgreSQL."""
    row = db.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND application_name = 'crawler' AND wait_event_type = 'Lock'"
    ).fetchone()
    return row[0] > 0


async def test_buffer_is_bounded_while_the_database_is_blocked(database_url, db):
    """With the table locked, add() stops returning once the buffer is full, instead of buffering without end."""
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
    deadline = time.monotonic() + 60
    while not blocked_on_a_lock(db):  # a flush reached the locked table
        assert time.monotonic() < deadline and not task.done()
        await asyncio.sleep(0.05)
    # add() only waits inside a flush: the producer is stalled, with the buffer full and no more
    assert not task.done()
    assert 300 - 50 <= produced <= 300 + 100  # kept accepting pages until full; then memory is bounded
    await locker.rollback()
    await locker.close()
    await asyncio.wait_for(task, 60)
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
