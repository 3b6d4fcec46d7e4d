"""Deferred requests: "not before T" without holding a download slot.

Middlewares that must wait a long time (a retry's backoff, ``Retry-After``, an
open circuit, a paused rate-limit key) return ``deferred_copy(request, T)``;
Scrapy hands it back to the scheduler, which keeps it in a heap until T and
only then releases it. Sleeping inside a middleware instead would pin one of
CONCURRENT_REQUESTS for the whole wait and starve every other domain.

Deferred requests keep the spider open. If the crawl stops while some are
still waiting (shutdown, close), they are recorded as dead letters (reason
``deferred_at_shutdown``) so ``scrapy crawl replay_dead_letters`` recovers them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time

from scrapy.core.scheduler import Scheduler
from scrapy.utils.defer import deferred_from_coro

from crawler.dead_letters import DeadLetters, request_dead_letter, write_now

logger = logging.getLogger(__name__)

DEFER_UNTIL = "defer_until"  # meta: epoch seconds before which the request must not be sent
DEFER_REASON = "defer_reason"


def deferred_copy(request, until: float, reason: str):
    """A copy of ``request`` the scheduler holds back until ``until`` (epoch seconds)."""
    new = request.replace(dont_filter=True)  # the original already passed the dupefilter
    new.meta[DEFER_UNTIL] = until
    new.meta[DEFER_REASON] = reason
    return new


def supports_deferral(crawler) -> bool:
    engine = getattr(crawler, "engine", None)
    slot = getattr(engine, "_slot", None)
    scheduler = getattr(slot, "scheduler", None)
    # the shared scheduler (shared.py) keeps deferred requests in Redis
    return isinstance(scheduler, DeferringScheduler) or getattr(scheduler, "supports_deferral", False)


async def defer(crawler, request, until: float, reason: str):
    """Defer through the scheduler when it can; otherwise wait here (non-blocking) and go on."""
    if supports_deferral(crawler):
        return deferred_copy(request, until, reason)
    await asyncio.sleep(max(0.0, until - time.time()))
    return None


def wake_engine(crawler) -> None:
    """Ask the engine for the next request now (its own heartbeat polls only every 5 s)."""
    slot = getattr(getattr(crawler, "engine", None), "_slot", None)
    if slot is not None and slot.closing is None:
        slot.nextcall.schedule()  # private, but stable; the heartbeat is the fallback


class DeferringScheduler(Scheduler):
    """Scrapy's scheduler plus a heap of requests that must wait until a given time."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.deferred: list[tuple[float, int, object]] = []
        self._sequence = itertools.count()
        self._wakeup: asyncio.TimerHandle | None = None

    def enqueue_request(self, request) -> bool:
        until = request.meta.get(DEFER_UNTIL)
        if until is not None and until > time.time():
            heapq.heappush(self.deferred, (until, next(self._sequence), request))
            if self.stats:
                self.stats.inc_value(f"scheduler/deferred/{request.meta.get(DEFER_REASON, 'other')}")
            self._schedule_wakeup()
            return True
        request.meta.pop(DEFER_UNTIL, None)
        return super().enqueue_request(request)

    def next_request(self):
        if self.deferred and self.deferred[0][0] <= time.time():
            _, _, request = heapq.heappop(self.deferred)
            request.meta.pop(DEFER_UNTIL, None)
            self._schedule_wakeup()
            return request
        return super().next_request()

    def has_pending_requests(self) -> bool:
        return bool(self.deferred) or super().has_pending_requests()

    def __len__(self) -> int:
        return len(self.deferred) + super().__len__()

    def _schedule_wakeup(self) -> None:
        """Ask the engine for requests when the earliest deferred one is due (its own
        heartbeat only polls every few seconds)."""
        if self._wakeup is not None:
            self._wakeup.cancel()
            self._wakeup = None
        if not self.deferred:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._wakeup = loop.call_later(max(0.0, self.deferred[0][0] - time.time()) + 0.001, self._wake_engine)

    def _wake_engine(self) -> None:
        self._wakeup = None
        wake_engine(self.crawler)

    def close(self, reason: str):
        if self._wakeup is not None:
            self._wakeup.cancel()
        result = super().close(reason)
        if not self.deferred or self.crawler is None:
            return result
        pending, self.deferred = [entry[2] for entry in self.deferred], []
        dead_letters = DeadLetters.for_crawler(self.crawler)
        spider = self.crawler.spider
        rows = [
            request_dead_letter(
                dead_letters,
                request,
                spider,
                "deferred_at_shutdown",
                attempts=request.meta.get("retry_times", 0),
                last_status=None,
            )
            for request in pending
        ]
        logger.warning(
            "%d deferred request(s) still waiting at close (%s): recorded as dead letters", len(rows), reason
        )
        return deferred_from_coro(write_now(self.crawler.settings, rows))
