"""Buffered, idempotent bulk writes of ``TableRows`` items into PostgreSQL.

Rows are buffered per (table, columns) and flushed when PG_BATCH_ROWS are
waiting, every PG_FLUSH_SECONDS, and when the spider closes. A flush is one
transaction: COPY into a temporary staging table, then
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``, so a replayed batch never
duplicates a row. Transient database errors are retried with backoff and the
rows stay buffered until committed.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

import psycopg
from psycopg import sql

from crawler.db import get_pool
from crawler.items import TableRows

logger = logging.getLogger(__name__)

RETRY_ATTEMPTS = 5
RETRY_BASE_SECONDS = 0.5


class PostgresPipeline:
    def __init__(self, settings, stats):
        self.settings = settings
        self.stats = stats
        self.batch_rows = settings.getint("PG_BATCH_ROWS")
        self.flush_seconds = settings.getfloat("PG_FLUSH_SECONDS")
        self.buffers: dict[tuple[str, tuple[str, ...]], list[tuple]] = {}
        self.oldest: float | None = None
        self.lock = asyncio.Lock()
        self.pool = None
        self.ticker: asyncio.Task | None = None

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings, crawler.stats)

    async def open_spider(self):
        self.pool = await get_pool(self.settings)
        self.ticker = asyncio.create_task(self._flush_by_age())

    async def close_spider(self):
        if self.ticker:
            self.ticker.cancel()
        await self.flush()

    async def process_item(self, item):
        if not isinstance(item, TableRows):
            return item
        if item.rows:
            self.buffers.setdefault((item.table, item.columns), []).extend(item.rows)
            self.oldest = self.oldest or time.monotonic()
            if sum(map(len, self.buffers.values())) >= self.batch_rows:
                await self.flush()
        return item

    async def _flush_by_age(self):
        while True:
            await asyncio.sleep(self.flush_seconds / 2)
            if self.oldest is not None and time.monotonic() - self.oldest >= self.flush_seconds:
                await self.flush()

    async def flush(self):
        async with self.lock:
            while self.buffers:
                (table, columns), rows = next(iter(self.buffers.items()))
                await self._write_with_retry(table, columns, rows)
                del self.buffers[(table, columns)]
            self.oldest = None

    async def _write_with_retry(self, table, columns, rows):
        for attempt in range(1, RETRY_ATTEMPTS + 1):
            try:
                started = time.monotonic()
                inserted = await self._write(table, columns, rows)
            except psycopg.OperationalError as exc:
                if attempt == RETRY_ATTEMPTS:
                    raise
                delay = random.uniform(0, RETRY_BASE_SECONDS * 2**attempt)
                logger.warning("write to %s failed (%s); retry %d in %.1fs", table, type(exc).__name__, attempt, delay)
                self.stats.inc_value("pg/retries")
                await asyncio.sleep(delay)
                continue
            self.stats.inc_value(f"pg/rows_written/{table}", inserted)
            self.stats.inc_value(f"pg/rows_duplicate/{table}", len(rows) - inserted)
            self.stats.inc_value("pg/flushes")
            logger.debug("flushed %d rows to %s in %.3fs", len(rows), table, time.monotonic() - started)
            return

    async def _write(self, table, columns, rows) -> int:
        ident_cols = sql.SQL(", ").join(map(sql.Identifier, columns))
        stage = sql.Identifier(f"stage_{table}")
        async with self.pool.connection() as conn, conn.transaction():
            await conn.execute(
                sql.SQL("CREATE TEMP TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA").format(
                    stage, ident_cols, sql.Identifier(table)
                )
            )
            async with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(stage, ident_cols)) as copy:
                for row in rows:
                    await copy.write_row(row)
            cursor = await conn.execute(
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT DO NOTHING").format(
                    sql.Identifier(table), ident_cols, ident_cols, stage
                )
            )
            return cursor.rowcount
