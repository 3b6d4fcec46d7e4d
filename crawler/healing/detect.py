"""Drift detection: when is a field broken rather than simply not shown for this person?

A field is broken when its history says it is usually present and it has now been missing (or read
values not of its kind) on enough pages in a row that chance is very unlikely: with a presence rate p,
``k`` misses in a row happen by chance with probability (1 - p)^k; a break needs that below 1 %
(2 pages for a field present on 90 % of pages, 6 for 60 %). p is the lower bound of the rate the history
supports (Wilson, 95 %): five pages out of five say "at least 57 %", not "always". A field seen on fewer
than ``MIN_HISTORY`` pages, or on under 30 % of them, never breaks on its own; one empty field never does.
"""

from __future__ import annotations

import math
from collections import Counter

from crawler.healing.memory import SelectorMemory

MIN_HISTORY = 5
MIN_PRESENCE = 0.3
CHANCE = 0.01


def wilson_lower(hits: int, pages: int, z: float = 1.96) -> float:
    """The lower bound of the rate ``hits / pages`` at 95 % confidence (Wilson score interval)."""
    rate = hits / pages
    centre = rate + z * z / (2 * pages)
    spread = z * math.sqrt(rate * (1 - rate) / pages + z * z / (4 * pages * pages))
    return max(0.0, (centre - spread) / (1 + z * z / pages))


def misses_needed(presence: float) -> int:
    """Misses in a row that chance explains less than 1 % of the time, at least 2."""
    if presence >= 1.0:
        return 2
    return max(2, min(10, math.ceil(math.log(CHANCE) / math.log(1.0 - presence))))


class DriftDetector:
    def __init__(self, memory: SelectorMemory):
        self.memory = memory
        self.streak: Counter = Counter()  # (site, kind, field) -> pages missed in a row

    def presence(self, site: str, kind: str, field: str) -> tuple[float, int]:
        """(the presence rate the history before the current streak of misses supports, its pages)."""
        memory = self.memory.of(site, kind).get(field)
        if memory is None:
            return 0.0, 0
        pages = memory.pages - self.streak[(site, kind, field)]
        return (wilson_lower(memory.hits, pages) if pages > 0 else 0.0), pages

    def usual(
        self, site: str, kind: str, field: str, at_least: float = MIN_PRESENCE, history: int = MIN_HISTORY
    ) -> bool:
        presence, pages = self.presence(site, kind, field)
        return pages >= history and presence >= at_least

    def observe(self, site: str, kind: str, present: dict[str, bool]) -> set[str]:
        """Count one page (field -> read type-valid values); the fields broken as of this page."""
        broken = set()
        for field, hit in present.items():
            key = (site, kind, field)
            self.streak[key] = 0 if hit else self.streak[key] + 1
            self.memory.count(site, kind, field, hit)
            if not hit and self.usual(site, kind, field):
                presence, _ = self.presence(site, kind, field)
                if self.streak[key] >= misses_needed(presence):
                    broken.add(field)
        return broken

    def reset(self, site: str, kind: str) -> None:
        """After a heal: the streaks start again (the new spec has its own record)."""
        for key in [k for k in self.streak if k[:2] == (site, kind)]:
            del self.streak[key]
