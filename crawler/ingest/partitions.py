"""Time-range partitions of an ingestion, each its own cursor chain, and their checkpoints.

A partition is ``[since, until)`` in epoch milliseconds; its key is that range,
so running the same command again finds the same checkpoints. A checkpoint
(``ingest_checkpoints``, committed in the same transaction as the rows it
covers) holds the partition's last cursor and the timestamp of its last
committed event: a run resumes from the cursor, or, when the cursor has expired,
from ``since`` = that timestamp (events at that very millisecond come again and
are absorbed by the primary key).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

from crawler.db.pool import get_pool, run_in_transaction

PLAN = """
INSERT INTO ingest_checkpoints (source, partition_key) VALUES (%s, %s) ON CONFLICT DO NOTHING
"""
CHECKPOINTS = """
SELECT partition_key, cursor, position_at, completed, rows_committed
FROM ingest_checkpoints WHERE source = %s
"""


@dataclass
class Partition:
    since_ms: int
    until_ms: int
    cursor: str | None = None
    position_ms: int | None = None  # last event handed to the pipelines (or committed, at start)
    completed: bool = False
    total: int | None = None  # meta.total of its first page, when the API tells
    fetched: int = 0
    committed_before: int = 0  # rows committed by earlier runs
    cursor_issued: float = 0.0  # monotonic time the current cursor was received

    @property
    def key(self) -> str:
        return f"{self.since_ms}-{self.until_ms}"

    def resume_since(self) -> int:
        return self.since_ms if self.position_ms is None else max(self.since_ms, self.position_ms)

    def take_cursor(self, cursor: str | None) -> None:
        self.cursor, self.cursor_issued = cursor, time.monotonic()


def plan(since_ms: int, until_ms: int, count: int, data_end_ms: int | None = None) -> list[Partition]:
    """``count`` contiguous ranges covering [since, until), of equal length over
    [since, data_end) when the data is known to thin out there (the last range
    still reaches ``until``, so nothing is left out)."""
    end = min(until_ms, data_end_ms) if data_end_ms and data_end_ms > since_ms else until_ms
    count = max(1, min(count, end - since_ms))
    step = (end - since_ms) / count
    bounds = [since_ms + round(step * i) for i in range(count)] + [until_ms]
    return [Partition(a, b) for a, b in itertools.pairwise(bounds) if b > a]


async def stored_partitions(settings, source: str) -> list[Partition]:
    """The partitions earlier runs planned for ``source``, with their checkpoints, in time order.

    A run resumes the stored plan rather than planning anew: a default ``until``
    of "now" differs on every run, and the checkpoints belong to the old ranges.
    """
    pool = await get_pool(settings)
    async with pool.connection() as conn:
        rows = await (await conn.execute(CHECKPOINTS, (source,))).fetchall()
    partitions = []
    for key, cursor, position_at, completed, rows_committed in rows:
        since, _, until = key.partition("-")
        if not (since.isdigit() and until.isdigit()):
            continue  # not a time-range partition of this spider
        partition = Partition(int(since), int(until), completed=completed, committed_before=rows_committed)
        partition.cursor = cursor  # age unknown: an expired one falls back to position_ms
        partition.position_ms = int(position_at.timestamp() * 1000) if position_at else None
        partitions.append(partition)
    return sorted(partitions, key=lambda p: p.since_ms)


async def store_plan(settings, source: str, partitions: list[Partition]) -> None:
    """Record every planned partition (empty checkpoints) before the first page is fetched,
    in one transaction: a run killed before some partition's first commit resumes it too."""

    async def insert(conn):
        async with conn.cursor() as cur:
            await cur.executemany(PLAN, [(source, p.key) for p in partitions])

    await run_in_transaction(settings, insert)
