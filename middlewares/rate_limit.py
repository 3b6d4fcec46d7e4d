"""Rate limiting per key, shared by every worker, adaptive to the server's own budget.

- Key: ``meta["ratelimit_key"]`` (e.g. one per API key) or the request's host.
- Rate: ``meta["ratelimit_rps"]``, else the spider's ``ratelimit_rps`` attribute
  (from its site definition), else ``RATELIMIT_SITES[host]``, else
  ``RATELIMIT_DEFAULT_RPS`` (polite: 1 request/s per broker site).
- When responses announce ``X-RateLimit-Limit/Remaining/Reset`` (Reset as seconds
  remaining or an epoch: detected), the remaining budget is spread evenly over
  the time left in the server's window, minus the requests already on their way;
  with nothing left the key pauses until the reset. So a long run uses the whole
  budget and gets no 429 once the first response has been seen.
- ``Retry-After`` on a 429/503, and soft rate-limit pages (``meta["block"] ==
  "rate_limited"``, from the block detector), pause the whole key for every worker.

Waits never block the reactor: short ones are asyncio sleeps; a wait longer than
RATELIMIT_DEFER_SECONDS hands the request back to the scheduler until its time
(crawler.scheduling.deferring), freeing the download slot for other hosts.
State lives in Redis with REDIS_URL (crawler.resilience.buckets), in process otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import time

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.httpobj import urlparse_cached

from crawler.config import flag
from crawler.notation import parse_mapping
from crawler.resilience.buckets import LocalBuckets, RedisBuckets
from crawler.resilience.budget import ResetClock, parse_budget, parse_retry_after
from crawler.resilience.fallback import SharedOrLocal
from crawler.scheduling.deferring import defer
from crawler.shared_redis import redis_for

logger = logging.getLogger(__name__)

RESERVATION_META = "_ratelimit"  # meta: (key, reservation token) of the request in flight


class RateLimitMiddleware:
    def __init__(self, crawler):
        settings = crawler.settings
        if not flag(settings, "RATELIMIT_ENABLED"):
            raise NotConfigured
        self.crawler = crawler
        self.stats = crawler.stats
        self.default_rps = settings.getfloat("RATELIMIT_DEFAULT_RPS")
        self.burst = settings.getint("RATELIMIT_BURST")
        self.sites = parse_sites(settings.get("RATELIMIT_SITES"))
        self.adaptive = flag(settings, "RATELIMIT_ADAPTIVE")
        self.margin_ms = settings.getfloat("RATELIMIT_RESET_MARGIN") * 1000
        self.max_wait_ms = settings.getfloat("RATELIMIT_MAX_RESERVE_SECONDS") * 1000
        self.defer_after = settings.getfloat("RATELIMIT_DEFER_SECONDS")
        self.block_pause = settings.getfloat("RATELIMIT_BLOCK_PAUSE_SECONDS")
        self.lease_ms = (settings.getfloat("DOWNLOAD_TIMEOUT") + 30) * 1000
        redis = redis_for(crawler)
        if redis is not None:  # shared by all workers; this worker's own while Redis fails
            # a fast key reserves slots in batches: one round trip for several requests
            batch, batch_ms = settings.getint("RATELIMIT_BATCH"), settings.getfloat("RATELIMIT_BATCH_SECONDS") * 1000
            shared = RedisBuckets(redis, settings.get("REDIS_KEY_PREFIX"), batch=batch, batch_ms=batch_ms)
            self.buckets = SharedOrLocal(shared, LocalBuckets(), crawler.stats, "ratelimit")
            # held slots and answered leases go back before the client closes (at engine_stopped)
            crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        else:
            self.buckets = LocalBuckets()
        self.clocks: dict[str, ResetClock] = {}  # key -> where the server's window ends
        self.reported: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def spider_closed(self):
        await self.buckets.close()

    def key_and_rate(self, request, spider) -> tuple[str, float]:
        host = urlparse_cached(request).hostname or ""
        key = request.meta.get("ratelimit_key") or host
        rps = request.meta.get("ratelimit_rps") or getattr(spider, "ratelimit_rps", None)
        return key, float(rps or self.sites.get(host) or self.default_rps)

    async def process_request(self, request):
        if request.meta.get("dont_ratelimit"):
            return None
        if held := request.meta.pop(RESERVATION_META, None):  # back through a redirect: its old lease is over
            await self.buckets.release(*held)
        key, rps = self.key_and_rate(request, self.crawler.spider)
        started = time.monotonic()
        while True:
            slot = await self.buckets.take(key, 1000 / rps, self.burst, self.lease_ms, self.max_wait_ms)
            wait_ms = slot.wait_ms
            if slot.reserved:
                if wait_ms > 0:
                    await asyncio.sleep(wait_ms / 1000)
                # a slot held from a batch goes only if no worker paused the key or learned its budget since
                if await self.buckets.confirm(key, slot):
                    break
                self.stats.inc_value("ratelimit/held_revoked")
                continue
            if wait_ms / 1000 > self.defer_after:  # a long pause: free the slot, come back later
                self.stats.inc_value("ratelimit/deferred")
                return await defer(self.crawler, request, time.time() + wait_ms / 1000, "ratelimit")
            await asyncio.sleep(min(wait_ms, self.max_wait_ms) / 1000)
        waited = time.monotonic() - started
        request.meta[RESERVATION_META] = (key, slot.token)
        if waited > 0.001:
            self.stats.inc_value("ratelimit/waits")
            self.stats.inc_value("ratelimit/wait_seconds", round(waited, 3))
        return None

    async def process_response(self, request, response):
        key, token = request.meta.pop(RESERVATION_META, (None, None))
        if key is None:
            return response
        await self.buckets.release(key, token)
        if response.status == 429:
            self.stats.inc_value("ratelimit/429")
            self.stats.inc_value(f"ratelimit/429/{key}")
        # a hard 403 with Retry-After (Radaris-like sites) says when to come back as plainly as a 429
        retry_after = parse_retry_after(response.headers) if response.status in (403, 429, 503) else None
        budget = parse_budget(response.headers) if self.adaptive else None
        if retry_after:
            await self.pause(key, retry_after, f"Retry-After on a {response.status}")
        elif response.status == 429 and budget is not None:  # the budget says when it comes back
            await self.pause(key, budget.reset_in + self.margin_ms / 1000, "429 without Retry-After")
        elif request.meta.get("block") == "rate_limited":
            await self.pause(key, self.block_pause, "soft rate-limit page")
        if budget is not None:
            await self.adapt(key, budget)
        return response

    async def process_exception(self, request, exception):
        key, token = request.meta.pop(RESERVATION_META, (None, None))
        if key is not None:
            await self.buckets.release(key, token)

    async def adapt(self, key: str, budget) -> None:
        clock = self.clocks.setdefault(key, ResetClock())
        time_left = clock.observe(budget)
        window = clock.longest
        if key not in self.reported:
            self.reported.add(key)
            logger.info(
                "rate limit %s: server budget %d per ~%.0fs (X-RateLimit-Reset as %s)",
                key,
                budget.limit,
                window,
                budget.reset_style,
            )
        steady_ms = window * 1000 / max(budget.limit, 1)
        adapted = await self.buckets.adapt(
            key, budget.remaining, time_left * 1000, steady_ms, self.margin_ms, window * 1000
        )
        self.stats.set_value(f"ratelimit/interval_ms/{key}", round(adapted.interval_ms, 1))
        if adapted.paused_ms > 0:
            self.stats.inc_value("ratelimit/budget_pauses")
            logger.debug(
                "rate limit %s: budget used up, pausing %.1fs until the window resets", key, adapted.paused_ms / 1000
            )

    async def pause(self, key: str, seconds: float, why: str) -> None:
        if await self.buckets.pause(key, seconds * 1000):
            self.stats.inc_value("ratelimit/pauses")
            logger.info("rate limit %s: paused %.1fs (%s)", key, seconds, why)


def parse_sites(value) -> dict[str, float]:
    """RATELIMIT_SITES: a dict, or JSON / ``host=rps,host=rps`` text from the environment."""
    return parse_mapping(value, float)
