"""Progress of an ingestion: what this worker fetched, and where the whole job stands.

Several workers may share one job (the shared scheduler), and a page request
reaches a callback as a copy, so no worker's own objects add up to the job.
Each line says what this worker fetched (and how fast); the job's committed
events, completed partitions and ETA come from the checkpoints in PostgreSQL,
which every worker commits with its rows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

from crawler.ingest.partitions import Partition

logger = logging.getLogger("spiders.events")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def state(partition: Partition) -> str:
    if partition.completed:
        return "done"
    if partition.total:
        return f"{100 * partition.committed_before / partition.total:.0f}%"
    return f"{partition.committed_before:,}"


class Progress:
    def __init__(self, every_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.every, self.clock = every_seconds, clock
        self.started = self.last = clock()
        self.fetched = 0  # events this worker fetched
        self.first_view: tuple[float, int] | None = None  # (time, committed) when the job was first read

    def add(self, events: int) -> None:
        self.fetched += events

    def due(self) -> bool:
        """True once per period: pages handled while the line is being written do not log it again."""
        now = self.clock()
        if now - self.last < self.every:
            return False
        self.last = now
        return True

    def log(self, job: Iterable[Partition], total: int | None, final: bool = False) -> None:
        """Log one line; ``job`` is every partition as its checkpoint stands (stored_partitions),
        with ``total`` set where this worker learned it."""
        self.last = now = self.clock()
        job = list(job)
        rate = self.fetched / max(now - self.started, 1e-9)
        committed = sum(p.committed_before for p in job)
        done = sum(p.completed for p in job)
        known = [p.total for p in job if p.total is not None]
        total = sum(known) if job and len(known) == len(job) else total
        if self.first_view is None:
            self.first_view = (now, committed)
        share = eta = ""
        if total:
            share = f" ({100 * min(committed, total) / total:.1f}% of {total:,})"
            seen_at, seen = self.first_view
            job_rate = (committed - seen) / (now - seen_at) if now > seen_at else 0
            if job_rate > 0 and not final and done < len(job):
                eta = f", ETA {duration(max(total - committed, 0) / job_rate)}"
        parts = " ".join(f"[{p.key}: {state(p)}]" for p in job[:8])
        logger.info(
            "events %s: this worker fetched %s, %s/s; job: %s committed%s%s; partitions %d/%d done %s",
            "finished" if final else "progress",
            f"{self.fetched:,}",
            f"{rate:,.0f}",
            f"{committed:,}",
            share,
            eta,
            done,
            len(job),
            parts,
        )
