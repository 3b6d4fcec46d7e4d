"""Extension: makes a graceful shutdown visible (what it waits for, what it cost).

Scrapy already does the work on the first SIGTERM / SIGINT: the engine stops
taking requests from the scheduler and cancels ``start()``, the requests in
flight finish (their callbacks and items included), then pipelines close (the
BulkWriter flushes every buffered row in one last transaction), the scheduler
closes (deferred requests become ``deferred_at_shutdown`` dead letters, leases
of the shared scheduler are returned), ``spider_closed`` marks the scan row
``cancelled``, and ``scrapy crawl`` exits 0. A second signal stops the reactor
at once: nothing more is written, leases are left to expire, and our ``crawl``
command exits 1.

This extension wraps the handler Scrapy installed so that, at the first
signal, it logs and records in stats how much is in flight, queued and deferred
(``shutdown/in_flight``, ``shutdown/queued``, ``shutdown/deferred``), and at
close how long draining took (``shutdown/drain_seconds``), and sends the
project's ``shutdown_requested`` signal, for components that wait on requests the
scheduler will no longer hand out. It never changes what the signal does.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from functools import partial

from scrapy import signals

from crawler import signals as project_signals

logger = logging.getLogger(__name__)

HANDLED = (signal.SIGTERM, signal.SIGINT)


class GracefulShutdown:
    def __init__(self, crawler):
        self.crawler = crawler
        self.requested_at: float | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_crawler(cls, crawler):
        extension = cls(crawler)
        crawler.signals.connect(extension.engine_started, signal=signals.engine_started)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def engine_started(self) -> None:
        # CrawlerProcess installs its handlers when the reactor starts, before the engine does;
        # under CrawlerRunner (no handlers of Scrapy's) there is nothing to wrap
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if threading.current_thread() is not threading.main_thread():
            return  # `scrapy shell` runs the crawler in a thread: its signals stay the shell's
        for signum in HANDLED:
            previous = signal.getsignal(signum)
            if callable(previous):
                signal.signal(signum, partial(self._on_signal, previous))

    def _on_signal(self, previous, signum, frame) -> None:
        # a signal handler: no logging here (the interrupted code may hold the stream's lock)
        if self.requested_at is None:
            self.requested_at = time.monotonic()
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self._report, signum)
        previous(signum, frame)

    def _report(self, signum: int) -> None:
        slot = getattr(self.crawler.engine, "_slot", None)  # private, but the only view of what is in flight
        scheduler = getattr(slot, "scheduler", None)
        in_flight = len(slot.inprogress) if slot is not None else 0
        deferred = len(getattr(scheduler, "deferred", ()) or ())
        try:
            queued = max(0, len(scheduler) - deferred) if scheduler is not None else 0
        except Exception:  # a shared queue that cannot be counted right now
            queued = -1
        stats = self.crawler.stats
        stats.set_value("shutdown/signal", signal.Signals(signum).name)
        stats.set_value("shutdown/in_flight", in_flight)
        stats.set_value("shutdown/queued", queued)
        stats.set_value("shutdown/deferred", deferred)
        logger.info(
            "%s: finishing %d request(s) in flight, then flushing pipelines and closing; not starting %s queued "
            "request(s); %d deferred request(s) are kept as dead letters. Send the signal again to stop at once "
            "(buffered rows are then lost and leases left to expire).",
            signal.Signals(signum).name,
            in_flight,
            queued if queued >= 0 else "the",
            deferred,
        )
        self.crawler.signals.send_catch_log(project_signals.shutdown_requested, signal_name=signal.Signals(signum).name)

    def spider_closed(self, spider, reason: str) -> None:
        if self.requested_at is None:
            return
        drained = time.monotonic() - self.requested_at
        self.crawler.stats.set_value("shutdown/drain_seconds", round(drained, 3))
        logger.info("graceful shutdown: spider closed (%s) %.1fs after the signal", reason, drained)
