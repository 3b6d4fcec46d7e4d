"""Progress of an ingestion: events/s, share of the announced total, ETA, per partition."""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("spiders.events")


def duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    def __init__(self, partitions, total: int | None, every_seconds: float):
        self.partitions, self.total, self.every = partitions, total, every_seconds
        self.started = self.last = time.monotonic()

    def maybe_log(self) -> None:
        if time.monotonic() - self.last >= self.every:
            self.log()

    def log(self, final: bool = False) -> None:
        self.last = now = time.monotonic()
        fetched = sum(p.fetched for p in self.partitions)
        rate = fetched / max(now - self.started, 1e-9)
        done = sum(p.completed for p in self.partitions)
        known = [p.total for p in self.partitions if p.total is not None]
        total = sum(known) if len(known) == len(self.partitions) else self.total
        share = eta = ""
        if total:
            share = f" ({100 * min(fetched, total) / total:.1f}% of {total:,})"
            if rate > 0 and not final:
                eta = f", ETA {duration(max(total - fetched, 0) / rate)}"
        parts = " ".join(
            f"[{p.key}: {'done' if p.completed else f'{100 * p.fetched / p.total:.0f}%' if p.total else p.fetched}]"
            for p in self.partitions[:8]
        )
        logger.info(
            "events %s: %s fetched%s, %s/s%s; partitions %d/%d done %s",
            "finished" if final else "progress",
            f"{fetched:,}",
            share,
            f"{rate:,.0f}",
            eta,
            done,
            len(self.partitions),
            parts,
        )
