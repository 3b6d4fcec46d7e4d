"""Shared stats: every worker of a job adds its counters to one Redis hash.

Scrapy's stats are per process; scrapy-redis's RedisStatsCollector replaces
them with a Redis round trip per ``get_value``/``inc_value`` and increments by
read-then-write (two workers can lose each other's counts). Here each worker
keeps Scrapy's in-memory collector and, every SCHEDULER_STATS_SECONDS and at
close, adds what its numeric counters grew by since the last push with
HINCRBY / HINCRBYFLOAT (atomic, so totals are exact whatever the number of
workers). Gauges (``scheduler/shared/*``, ``scheduler/leases/held``) and
``*_max``/``*_min`` values are not summed. The hash is ``<SCHEDULER_KEY>:stats``:

    redis-cli HGETALL 'crawler:sched:{fetch:<job digest>}:stats'
"""

from __future__ import annotations

import asyncio
import logging
import re

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler.scheduling.shared import job_key
from crawler.shared_redis import redis_for

logger = logging.getLogger(__name__)

NOT_SUMMED = ("scheduler/shared/", "scheduler/leases/held", "scheduler/leases/expired_returned")
EXTREMES = re.compile(r"(^|[/_])(max|min)($|[/_])")  # memusage/max, pg/flush_seconds_max, request_depth_max


class SharedStats:
    def __init__(self, crawler):
        self.crawler = crawler
        self.interval = crawler.settings.getfloat("SCHEDULER_STATS_SECONDS")
        self.pushed: dict[str, float] = {}
        self.task: asyncio.Task | None = None
        self.key = ""

    @classmethod
    def from_crawler(cls, crawler):
        if not crawler.settings.get("REDIS_URL"):
            raise NotConfigured("shared stats need REDIS_URL")
        extension = cls(crawler)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider):
        self.key = job_key(self.crawler.settings, spider) + ":stats"
        self.task = asyncio.get_event_loop().create_task(self._push_forever())

    async def spider_closed(self, spider, reason):
        if self.task is not None:
            self.task.cancel()
        await self.push()

    def deltas(self) -> dict[str, float]:
        changes = {}
        for name, value in self.crawler.stats.get_stats().items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if name.startswith(NOT_SUMMED) or EXTREMES.search(name):
                continue
            if delta := value - self.pushed.get(name, 0):
                changes[name] = delta
        return changes

    async def push(self) -> None:
        changes = self.deltas()
        if not changes:
            return
        client = redis_for(self.crawler)
        async with client.pipeline(transaction=False) as pipe:
            for name, delta in changes.items():
                if isinstance(delta, int):
                    pipe.hincrby(self.key, name, delta)
                else:
                    pipe.hincrbyfloat(self.key, name, delta)
            await pipe.execute()
        for name, delta in changes.items():
            self.pushed[name] = self.pushed.get(name, 0) + delta

    async def _push_forever(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.push()
            except Exception:  # shared totals lag; the worker's own stats are intact
                logger.warning("Pushing shared stats failed", exc_info=True)
