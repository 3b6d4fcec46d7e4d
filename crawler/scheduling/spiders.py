"""Feed a shared job from a Redis list, with Scrapy 2.19's ``async def start()``.

scrapy-redis's RedisSpider only defines ``start_requests`` (removed from the
spider start path in Scrapy 2.13+) and reads its key from ``spider_idle``,
which never fires while the shared scheduler keeps the spider open. Here
``start()`` itself polls the key (backing off while it is empty) and yields
what it finds; the requests go through the shared scheduler and dupefilter,
so any worker crawls them. It stops once the shared job has been idle for
SCHEDULER_IDLE_CLOSE_SECONDS (0 = feed forever).

    class MySpider(RedisStartMixin, scrapy.Spider):
        name = "my"
    # redis-cli RPUSH 'crawler:start:my' 'https://example.com/' \
    #   '{"url": "https://example.com/a", "priority": 5, "meta": {"k": 1}, "callback": "parse_item"}'

A line is a URL or a JSON object of ``Request.to_dict`` fields (``url``,
``method``, ``headers``, ``body``, ``meta``, ``priority``, ``dont_filter``,
``cb_kwargs``; ``callback``/``errback`` name spider methods). A bad line is
logged (without its content: it may carry personal data) and skipped.
"""

from __future__ import annotations

import asyncio
import json
import logging

import scrapy
from scrapy.utils.request import request_from_dict

from crawler.shared_redis import redis_for

logger = logging.getLogger(__name__)


def start_key(settings, spider_name: str) -> str:
    prefix = settings.get("REDIS_KEY_PREFIX") or ""
    return settings.get("SCHEDULER_START_KEY") % {"prefix": prefix, "spider": spider_name}


class RedisStartMixin:
    redis_start_key: str | None = None  # default: SCHEDULER_START_KEY

    async def start(self):
        settings = self.crawler.settings
        client = redis_for(self.crawler)
        if client is None:
            raise RuntimeError(f"{type(self).__name__} reads its start requests from Redis: set REDIS_URL")
        key = self.redis_start_key or start_key(settings, self.name)
        poll_min = settings.getfloat("SCHEDULER_POLL_MIN_SECONDS")
        poll_max = settings.getfloat("SCHEDULER_POLL_MAX_SECONDS")
        delay = 0.0
        while True:
            # one line at a time: a worker killed between LPOP and the scheduler's push loses
            # at most that line (the push is in the same reactor turn as the yield)
            data = await client.lpop(key)
            if data is not None:
                delay = 0.0
                request = self.request_from_data(data)
                if request is not None:
                    yield request
                continue
            scheduler = self.crawler.engine.scheduler
            if scheduler is not None and hasattr(scheduler, "idle_expired"):
                scheduler.shared_counts(max_age=0)  # asks for a fresh read; never waits
                if scheduler.busy():
                    scheduler.idle_since = None
                elif scheduler.idle_expired():
                    return
            delay = min(poll_max, max(poll_min, delay * 2))
            await asyncio.sleep(delay)

    def request_from_data(self, data: bytes):
        text = data.decode("utf-8", "replace").strip()
        try:
            if text.startswith("{"):
                fields = json.loads(text)
                if not isinstance(fields.get("url"), str):
                    raise ValueError("no url")
                if isinstance(fields.get("body"), str):
                    fields["body"] = fields["body"].encode()
                return request_from_dict(fields, spider=self)
            return scrapy.Request(text)
        except (ValueError, TypeError) as exc:
            logger.warning("Skipped a start entry that is not a URL or a request object (%s)", type(exc).__name__)
            self.crawler.stats.inc_value("scheduler/start/invalid")
            return None
