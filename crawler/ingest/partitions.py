"""Time-range partitions of an ingestion, each its own cursor chain, and their checkpoints.

A partition is ``[since, until)`` in epoch milliseconds; its key is that range,
so running the same command again finds the same checkpoints. A checkpoint
(``ingest_checkpoints``, committed in the same transaction as the rows it
covers) holds the partition's last cursor and the timestamp of its last
committed event: a run resumes from the cursor, or, when the cursor has expired,
from ``since`` = that timestamp (events at that very millisecond come again and
are absorbed by the primary key).

A partition's chain position (cursor, last timestamp) travels in its page
requests; the ``Partition`` objects hold what one worker knows of it. Requests
go through a shared scheduler as copies, and several workers may take turns on
one chain, so what the whole job did is read back from the checkpoints.
"""

from __future__ import annotations

import itertools
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
    cursor: str | None = None  # from its checkpoint: where this run starts it
    position_ms: int | None = None  # likewise: its last committed event
    completed: bool = False
    total: int | None = None  # meta.total of its first page, when the API tells
    fetched: int = 0  # events this worker fetched in it
    committed_before: int = 0  # rows committed by earlier runs (checkpoint's rows_committed)

    @property
    def key(self) -> str:
        return f"{self.since_ms}-{self.until_ms}"

    @classmethod
    def from_key(cls, key: str) -> Partition | None:
        since, _, until = key.partition("-")
        if not (since.isdigit() and until.isdigit()):
            return None  # not a time-range partition of this spider
        return cls(int(since), int(until))

    def resume_since(self, position_ms: int | None) -> int:
        return self.since_ms if position_ms is None else max(self.since_ms, position_ms)


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
        partition = Partition.from_key(key)
        if partition is None:
            continue
        partition.completed, partition.committed_before = completed, rows_committed
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
