"""BulkWriter: the one path by which rows reach PostgreSQL during a crawl.

Rows are buffered per (table, columns) and flushed when PG_BATCH_ROWS are
waiting, every PG_FLUSH_SECONDS, and at close. A flush is ONE transaction:
for each table (in foreign-key order) COPY into a temporary staging table and
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, then the ingestion checkpoints
that cover those rows. So a replay never duplicates a row and a checkpoint is
never ahead of its rows.

Transient errors (connection lost, server restarting, serialization
failures) are retried with exponential backoff and full jitter while the rows
stay buffered. A full batch is flushed in the background, so the next pages
are validated while PostgreSQL ingests; ``add`` waits only while
PG_MAX_BUFFER_ROWS are buffered, which slows the engine instead of growing
memory (backpressure).

One writer per crawler (``BulkWriter.for_crawler``): pipelines and middlewares
that need to write (dead letters, screenshots) share it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

import orjson
import psycopg
from psycopg import sql

from crawler.db.copy_text import render_rows
from crawler.db.pool import get_pool, is_transient
from crawler.items import Checkpoint

logger = logging.getLogger(__name__)

# Parents before children, so foreign keys hold inside one flush.
TABLE_ORDER = {"websites": 0, "scans": 1, "screenshots": 2, "findings": 3, "held_findings": 3}

UPSERT_CHECKPOINT = """
INSERT INTO ingest_checkpoints (source, partition_key, cursor, position_at, rows_committed, completed, state)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source, partition_key) DO UPDATE SET
    -- a completed partition stays completed: a page crawled again later (a lease returned by a
    -- killed worker) must not move its cursor back or reopen it
    cursor = CASE WHEN ingest_checkpoints.completed THEN ingest_checkpoints.cursor ELSE EXCLUDED.cursor END,
    position_at = CASE WHEN ingest_checkpoints.completed THEN ingest_checkpoints.position_at
                       ELSE EXCLUDED.position_at END,
    rows_committed = ingest_checkpoints.rows_committed + EXCLUDED.rows_committed,
    completed = ingest_checkpoints.completed OR EXCLUDED.completed,
    state = CASE WHEN ingest_checkpoints.completed THEN ingest_checkpoints.state ELSE EXCLUDED.state END,
    updated_at = now()"""


class WriteFailed(Exception):
    pass


class BulkWriter:
    def __init__(self, settings, stats):
        self.settings = settings
        self.stats = stats
        self.batch_rows = settings.getint("PG_BATCH_ROWS")
        self.max_buffer_rows = max(self.batch_rows, settings.getint("PG_MAX_BUFFER_ROWS"))
        self.flush_seconds = settings.getfloat("PG_FLUSH_SECONDS")
        self.retry_seconds = settings.getfloat("PG_RETRY_SECONDS")
        # (table, columns, fresh) -> rows
        self.buffers: dict[tuple[str, tuple[str, ...], bool], list[tuple]] = {}
        self.checkpoints: dict[tuple[str, str], Checkpoint] = {}
        self.on_commit: list[Callable[[], Awaitable[None]]] = []
        # called with (seconds, rows) after each committed flush (metrics, tracing)
        self.flush_observers: list[Callable[[float, int], None]] = []
        # awaited with the connection once a write attempt's rows are in, before its transaction
        # commits: a hook for tracing, and for tests that break the connection mid-flush
        self.before_commit: list[Callable[[psycopg.AsyncConnection], Awaitable[None]]] = []
        self.buffered = 0
        self.oldest: float | None = None
        self.lock = asyncio.Lock()
        self.pool = None
        self.ticker: asyncio.Task | None = None
        self.background: asyncio.Task | None = None
        self.failure: WriteFailed | None = None  # from a background flush, raised by the next add()
        self.users = 0

    @classmethod
    def for_crawler(cls, crawler) -> BulkWriter:
        writer = getattr(crawler, "_bulk_writer", None)
        if writer is None:
            writer = crawler._bulk_writer = cls(crawler.settings, crawler.stats)
        return writer

    async def open(self) -> None:
        """Reference-counted: each component that writes opens and closes once."""
        self.users += 1
        if self.pool is None:
            self.pool = await get_pool(self.settings)
            self.ticker = asyncio.create_task(self._flush_by_age())

    async def close(self) -> None:
        self.users -= 1
        if self.users > 0:
            return
        if self.ticker:
            self.ticker.cancel()
        if self.background is not None:
            await asyncio.wait([self.background])
        await self.flush()

    async def add(
        self,
        table: str,
        columns: tuple[str, ...],
        rows: list[tuple],
        checkpoint: Checkpoint | None = None,
        *,
        fresh: bool = False,
        on_commit: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        # buffer first, whatever happens next: a failure raised below must never leave these
        # rows out while a later checkpoint (covering them) gets committed
        if rows:
            self.buffers.setdefault((table, columns, fresh), []).extend(rows)
            self.buffered += len(rows)
        self.on_commit.extend(on_commit)
        if checkpoint is not None:
            key = (checkpoint.source, checkpoint.partition_key)
            previous = self.checkpoints.get(key)
            self.checkpoints[key] = previous.merge(checkpoint) if previous else checkpoint
        if self.oldest is None and (rows or checkpoint):
            self.oldest = time.monotonic()
        if self.failure is not None:  # an earlier background flush gave up: say so (rows stay buffered)
            failure, self.failure = self.failure, None
            raise failure
        if self.buffered >= self.max_buffer_rows:
            await self.flush()  # backpressure: the caller (and so the engine) waits
        if self.buffered >= self.batch_rows and (self.background is None or self.background.done()):
            self.background = asyncio.create_task(self._flush_in_background())

    async def _flush_in_background(self) -> None:
        try:
            await self.flush()
        except WriteFailed as exc:  # the rows are back in the buffer
            logger.error("%s", exc)
            self.failure = exc

    async def _flush_by_age(self) -> None:
        while True:
            await asyncio.sleep(self.flush_seconds / 2)
            if self.oldest is not None and time.monotonic() - self.oldest >= self.flush_seconds:
                await self._flush_in_background()

    async def flush(self) -> None:
        async with self.lock:
            if not self.buffers and not self.checkpoints and not self.on_commit:
                return
            # take the buffers: rows added while this flush runs go to the next one
            buffers, checkpoints, callbacks = self.buffers, self.checkpoints, self.on_commit
            self.buffers, self.checkpoints, self.on_commit, self.buffered, self.oldest = {}, {}, [], 0, None
            try:
                await self._write_with_retry(buffers, checkpoints)
            except BaseException:
                self._restore(buffers, checkpoints, callbacks)
                raise
        for callback in callbacks:
            try:
                await callback()
            except Exception:  # a failed callback (e.g. marking a dedup filter) loses no row
                logger.exception("after-commit callback failed")
                self.stats.inc_value("pg/on_commit_failures")

    def _restore(self, buffers, checkpoints, callbacks) -> None:
        """Put back what could not be written, ahead of anything added since."""
        for key, rows in self.buffers.items():
            buffers.setdefault(key, []).extend(rows)
        for key, checkpoint in self.checkpoints.items():
            checkpoints[key] = checkpoints[key].merge(checkpoint) if key in checkpoints else checkpoint
        self.buffers, self.checkpoints, self.on_commit = buffers, checkpoints, callbacks + self.on_commit
        self.buffered = sum(map(len, buffers.values()))
        self.oldest = self.oldest or time.monotonic()

    async def _write_with_retry(self, buffers, checkpoints) -> None:
        rows = sum(map(len, buffers.values()))
        deadline = time.monotonic() + self.retry_seconds
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            try:
                inserted = await self._write(buffers, checkpoints)
                break
            except psycopg.Error as exc:
                if not is_transient(exc) or time.monotonic() >= deadline:
                    self.stats.inc_value("pg/write_failures")
                    raise WriteFailed(
                        f"writing {rows} buffered rows failed after {attempt} attempt(s): "
                        f"{type(exc).__name__} (SQLSTATE {getattr(exc, 'sqlstate', None)})"
                    ) from exc
                delay = random.uniform(0, min(30.0, 0.25 * 2**attempt))
                logger.warning(
                    "database write failed (%s); %d rows kept, retry %d in %.1fs",
                    type(exc).__name__,
                    rows,
                    attempt,
                    delay,
                )
                self.stats.inc_value("pg/retries")
                await asyncio.sleep(delay)
        for table, count in inserted.items():
            self.stats.inc_value(f"pg/rows_written/{table}", count)
        offered: dict[str, int] = {}
        for (table, _, _), table_rows in buffers.items():
            offered[table] = offered.get(table, 0) + len(table_rows)
        for table, count in offered.items():
            self.stats.inc_value(f"pg/rows_duplicate/{table}", count - inserted.get(table, 0))
        self.stats.inc_value("pg/flushes")
        seconds = time.monotonic() - started
        self.stats.max_value("pg/flush_seconds_max", round(seconds, 3))
        for observe in self.flush_observers:
            try:  # the rows are committed: an observer's failure must not put them back in the buffer
                observe(seconds, rows)
            except Exception:
                logger.exception("flush observer %r failed", observe)

    async def _write(self, buffers, checkpoints) -> dict[str, int]:
        inserted: dict[str, int] = {}
        ordered = sorted(buffers.items(), key=lambda kv: TABLE_ORDER.get(kv[0][0], len(TABLE_ORDER)))
        async with self.pool.connection() as conn, conn.transaction():
            for (table, columns, fresh), rows in ordered:
                count = None
                if fresh:
                    try:
                        async with conn.transaction():  # a savepoint
                            count = await copy_direct(conn, table, columns, rows)
                    except psycopg.errors.UniqueViolation:
                        self.stats.inc_value("pg/fresh_fallbacks")
                if count is None:
                    count = await copy_upsert(conn, table, columns, rows)
                inserted[table] = inserted.get(table, 0) + count
            if checkpoints:
                async with conn.cursor() as cursor:
                    await cursor.executemany(
                        UPSERT_CHECKPOINT,
                        [
                            (
                                c.source,
                                c.partition_key,
                                c.cursor,
                                c.position_at,
                                c.rows,
                                c.completed,
                                orjson.dumps(c.state).decode(),
                            )
                            for c in checkpoints.values()
                        ],
                    )
            for hook in self.before_commit:
                await hook(conn)
        return inserted


async def write_rows(copy, rows: list[tuple], chunk: int = 5000) -> None:
    for start in range(0, len(rows), chunk):
        await copy.write(render_rows(rows[start : start + chunk]))


async def copy_direct(conn, table: str, columns: tuple[str, ...], rows: list[tuple]) -> int:
    """COPY straight into the table: fastest, fails on any duplicate key."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), cols)
    async with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
        await write_rows(copy, rows)
    return len(rows)


async def copy_upsert(conn, table: str, columns: tuple[str, ...], rows: list[tuple]) -> int:
    """COPY rows into a staging table, then insert what is not there yet; returns rows inserted."""
    cols = sql.SQL(", ").join(map(sql.Identifier, columns))
    # one staging table per (table, columns) per connection, emptied at each commit
    stage = sql.Identifier(
        f"stage_{table}_{hashlib.sha1(repr(columns).encode(), usedforsecurity=False).hexdigest()[:8]}"
    )
    await conn.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA").format(
            stage, cols, sql.Identifier(table)
        )
    )
    async with conn.cursor() as cursor:
        async with cursor.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, cols)) as copy:
            await write_rows(copy, rows)
        await cursor.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                sql.Identifier(table), cols, cols, stage
            )
        )
        return cursor.rowcount
