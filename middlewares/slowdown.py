"""Slow down after a block: a site that answers a burst with a captcha wants fewer requests, not the same again.

The rate limiter paces each key (host, or ``meta["ratelimit_key"]``) at a fixed
rate and pauses it on rate-limit answers. A captcha sent for a burst
(TruePeopleSearch's redirect to ``/InternalCaptcha``) is not a rate-limit
answer, yet the only honest way past it is the same: wait, then go slower. So
when the block detector flags a response as one of SLOWDOWN_KINDS (default
``captcha``), this middleware

- pauses the key for SLOWDOWN_PAUSE_SECONDS (or the response's Retry-After, if
  longer), so the site's burst window empties before the retries arrive;
- cuts the key's rate to SLOWDOWN_FACTOR times the rate in use (not below
  SLOWDOWN_MIN_RPS), once per incident: blocks of requests that were already on
  their way while the key was paused do not cut it again.

The cut rate is handed to the rate limiter as ``meta["ratelimit_rps"]`` (so this
component sits just before it, at 565). Requests of a paused key wait here
(long waits go back to the scheduler, like the rate limiter's). State is per
worker process; counted in stats as ``slowdown/*``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from scrapy.exceptions import NotConfigured
from scrapy.utils.httpobj import urlparse_cached

from crawler.config import flag
from crawler.resilience.budget import parse_retry_after
from crawler.scheduling.deferring import defer
from middlewares.rate_limit import parse_sites

logger = logging.getLogger(__name__)

BASE_RPS = "_slowdown_base_rps"  # meta: the rate the request had before any cut


@dataclass
class KeyState:
    rps: float  # the cut rate
    paused_until: float = 0.0  # monotonic
    cuts: int = 0


class BlockSlowdownMiddleware:
    def __init__(self, crawler):
        settings = crawler.settings
        if not flag(settings, "SLOWDOWN_ENABLED") or not flag(settings, "RATELIMIT_ENABLED"):
            raise NotConfigured
        self.crawler = crawler
        self.stats = crawler.stats
        self.kinds = {kind.strip() for kind in settings.getlist("SLOWDOWN_KINDS") if kind.strip()}
        self.factor = settings.getfloat("SLOWDOWN_FACTOR")
        self.min_rps = settings.getfloat("SLOWDOWN_MIN_RPS")
        self.pause_seconds = settings.getfloat("SLOWDOWN_PAUSE_SECONDS")
        self.defer_after = settings.getfloat("RATELIMIT_DEFER_SECONDS")
        self.default_rps = settings.getfloat("RATELIMIT_DEFAULT_RPS")
        self.sites = parse_sites(settings.get("RATELIMIT_SITES"))
        self.keys: dict[str, KeyState] = {}

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def key_and_rate(self, request) -> tuple[str, float]:
        """The rate limiter's key and rate for the request, before any cut of ours."""
        host = urlparse_cached(request).hostname or ""
        key = request.meta.get("ratelimit_key") or host
        rps = (
            request.meta.get(BASE_RPS)
            or request.meta.get("ratelimit_rps")
            or getattr(self.crawler.spider, "ratelimit_rps", None)
        )
        return key, float(rps or self.sites.get(host) or self.default_rps)

    async def process_request(self, request):
        if request.meta.get("dont_ratelimit") or not self.keys:
            return None
        key, rps = self.key_and_rate(request)
        state = self.keys.get(key)
        if state is None:
            return None
        request.meta.setdefault(BASE_RPS, rps)
        request.meta["ratelimit_rps"] = min(rps, state.rps)
        wait = state.paused_until - time.monotonic()
        if wait <= 0:
            return None
        self.stats.inc_value("slowdown/waits")
        if wait > self.defer_after:  # free the download slot for other hosts
            return await defer(self.crawler, request, time.time() + wait, "slowdown")
        await asyncio.sleep(wait)
        return None

    def process_response(self, request, response):
        kind = request.meta.get("block")
        if kind not in self.kinds or request.meta.get("dont_ratelimit"):
            return response
        key, rps = self.key_and_rate(request)
        now = time.monotonic()
        pause = max(self.pause_seconds, parse_retry_after(response.headers) or 0.0)
        state = self.keys.get(key)
        if state is not None and now < state.paused_until:
            return response  # sent before the pause began: the same incident
        in_use = min(rps, state.rps) if state else rps
        state = state or KeyState(rps=in_use)
        state.rps = max(self.min_rps, in_use * self.factor)
        state.paused_until = now + pause
        state.cuts += 1
        self.keys[key] = state
        self.stats.inc_value("slowdown/cuts")
        self.stats.inc_value(f"slowdown/cuts/{kind}")
        self.stats.set_value(f"slowdown/rps/{key}", round(state.rps, 3))
        logger.info("slowdown %s: %s; pausing %.1fs, then %.2f requests/s", key, kind, pause, state.rps)
        return response
