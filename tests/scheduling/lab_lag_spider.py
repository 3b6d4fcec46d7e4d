"""lab_tree (lab_tree_spider.py) plus a probe of the reactor's loop lag, for the scheduling tests.

``LoopLag`` schedules ``call_later(0.005)`` over and over on the asyncio loop the reactor runs
on and records how late each call fires: anything blocking the reactor thread (a synchronous
Redis round trip) shows as lateness. Samples count from the 20th response (start-up imports
are not the scheduler's) to the last one (the idle wait before the close would dilute them);
the lateness in milliseconds, sorted, goes to the JSON file named by ``-s LOOPLAG_FILE=...``.

On a busy machine the process also waits for a CPU: Linux counts that time per thread
(``/proc/self/schedstat``, second field: time runnable but not running), and ``lag_ms`` has
it subtracted, so what is left is time the reactor thread spent blocked or busy itself
(``raw_ms`` keeps the wall-clock lateness).
"""

import asyncio
import json
import time

from lab_tree_spider import LabTreeSpider
from scrapy import signals

INTERVAL = 0.005


def runqueue_wait_ms() -> float:
    """Milliseconds this (the reactor's) thread has waited for a CPU; 0 where Linux does not say."""
    try:
        with open("/proc/self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return 0.0


class LoopLag:
    def __init__(self, crawler):
        self.path = crawler.settings.get("LOOPLAG_FILE")
        self.responses = 0
        self.samples: list[tuple[float, float, float]] = []
        self.handle = None
        crawler.signals.connect(self.opened, signal=signals.spider_opened)
        crawler.signals.connect(self.response, signal=signals.response_received)
        crawler.signals.connect(self.closed, signal=signals.spider_closed)

    def opened(self, spider):
        self._schedule()

    def _schedule(self):
        self.waited = runqueue_wait_ms()
        self.due = time.monotonic() + INTERVAL
        self.handle = asyncio.get_event_loop().call_later(INTERVAL, self._tick)

    def _tick(self):
        if self.responses >= 20:
            now = time.monotonic()
            late = max(0.0, now - self.due) * 1000
            self.samples.append((now, late, max(0.0, late - (runqueue_wait_ms() - self.waited))))
        self._schedule()

    def response(self, response, request, spider):
        self.responses += 1
        self.last_response = time.monotonic()

    def closed(self, spider, reason):
        if self.handle is not None:
            self.handle.cancel()
        with open(self.path, "w") as out:
            kept = [sample for sample in self.samples if sample[0] <= self.last_response]
            raw, lag = sorted(sample[1] for sample in kept), sorted(sample[2] for sample in kept)
            json.dump({"responses": self.responses, "lag_ms": lag, "raw_ms": raw}, out)


class LabLagSpider(LabTreeSpider):
    name = "lab_tree"  # the same job key layout as lab_tree

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.loop_lag = LoopLag(crawler)  # started here: an EXTENSIONS entry would replace the project's
        return spider
