"""Retries with exponential backoff and full jitter; dead letters when they run out.

Replaces Scrapy's RetryMiddleware (same settings: RETRY_ENABLED, RETRY_TIMES,
RETRY_HTTP_CODES, RETRY_EXCEPTIONS, RETRY_PRIORITY_ADJUST; same meta:
``dont_retry``, ``max_retry_times``; per site: the spider's ``retry_times``).
Retried besides connection errors, timeouts and RETRY_HTTP_CODES:

- pages the block detector flagged (``meta["block"]``);
- status-200 responses whose body is truncated or is not JSON where JSON was
  expected (``meta["expect_json"]`` or a JSON Content-Type). The parsed body is
  left in ``meta["parsed_json"]`` so the spider does not parse it twice.

The wait before attempt n is uniform in [0, min(RETRY_BACKOFF_MAX,
RETRY_BACKOFF_BASE * 2**(n-1))], and never shorter than the server's
``Retry-After``; the request waits in the scheduler, not in a download slot.
After the last attempt the request is written to ``dead_letters`` (reason,
attempts, last status, the request serialised without credentials, encrypted)
and ``scrapy crawl replay_dead_letters`` can re-queue it; except a request marked
``meta["dead_letter"] = False``, whose sender keeps its own record of the failure
(an e-mail send: replaying it outside the sender's ledger could send it twice). A blocked or
unparsable page is then kept from the spider (IgnoreRequest); an HTTP error
response goes on to it as usual.
"""

from __future__ import annotations

import logging
import random
import time

import orjson
from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.misc import load_object

from crawler.config import flag
from crawler.dead_letters import DeadLetters, request_dead_letter
from crawler.resilience.budget import parse_retry_after
from crawler.scheduling.deferring import defer

logger = logging.getLogger(__name__)


def expects_json(request, response) -> bool:
    if request.meta.get("expect_json"):
        return True
    return b"json" in (response.headers.get(b"Content-Type") or b"").lower()


class RetryMiddleware:
    def __init__(self, crawler):
        settings = crawler.settings
        if not flag(settings, "RETRY_ENABLED"):
            raise NotConfigured
        self.crawler = crawler
        self.stats = crawler.stats
        self.max_retry_times = settings.getint("RETRY_TIMES")
        self.retry_http_codes = {int(code) for code in settings.getlist("RETRY_HTTP_CODES")}
        self.exceptions = tuple(
            load_object(e) if isinstance(e, str) else e for e in settings.getlist("RETRY_EXCEPTIONS")
        )
        self.priority_adjust = settings.getint("RETRY_PRIORITY_ADJUST")
        self.backoff_base = settings.getfloat("RETRY_BACKOFF_BASE")
        self.backoff_max = settings.getfloat("RETRY_BACKOFF_MAX")
        self.dead_letters = DeadLetters.for_crawler(crawler)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_response(self, request, response):
        if request.meta.get("dont_retry"):
            return response
        reason = self.failure_reason(request, response)
        if reason is None:
            return response
        return await self.retry(request, reason, response=response)

    async def process_exception(self, request, exception):
        if isinstance(exception, self.exceptions) and not request.meta.get("dont_retry"):
            return await self.retry(request, type(exception).__name__, exception=exception)
        return None

    def failure_reason(self, request, response) -> str | None:
        if block := request.meta.get("block"):
            return f"block_{block}"
        if response.status in self.retry_http_codes:
            return f"http_{response.status}"
        if response.status == 200 and expects_json(request, response):
            try:
                request.meta["parsed_json"] = orjson.loads(response.body)
            except orjson.JSONDecodeError:
                return "invalid_json"
        return None

    def max_retries(self, request) -> int:
        value = request.meta.get("max_retry_times")
        if value is None:
            value = getattr(self.crawler.spider, "retry_times", None)
        return self.max_retry_times if value is None else int(value)

    def backoff(self, attempt: int, response) -> float:
        delay = random.uniform(0, min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1)))
        if response is not None and (retry_after := parse_retry_after(response.headers)) is not None:
            delay = max(delay, retry_after)
        return delay

    @staticmethod
    def original(request):
        """The request as the spider made it: a block reached through a redirect (say to
        /InternalCaptcha) is retried, and dead-lettered, from where it started."""
        urls = request.meta.get("redirect_urls")
        if not urls:
            return request
        original = request.replace(url=urls[0])
        for key in ("redirect_urls", "redirect_reasons", "redirect_times", "redirect_ttl"):
            original.meta.pop(key, None)
        return original

    async def retry(self, request, reason: str, *, response=None, exception=None):
        request = self.original(request) if request.meta.get("block") else request
        attempt = request.meta.get("retry_times", 0) + 1
        if attempt <= self.max_retries(request):
            self.stats.inc_value("retry/count")
            self.stats.inc_value(f"retry/reason_count/{reason}")
            delay = self.backoff(attempt, response)
            new = request.replace(dont_filter=True, priority=request.priority + self.priority_adjust)
            new.meta["retry_times"] = attempt
            new.meta.pop("block", None)
            new.meta.pop("parsed_json", None)
            logger.debug("retrying %s (attempt %d, %s) in %.2fs", request.url, attempt + 1, reason, delay)
            deferred = await defer(self.crawler, new, time.time() + delay, "retry")
            return deferred if deferred is not None else new
        return await self.give_up(request, reason, attempt, response, exception)

    async def give_up(self, request, reason: str, attempts: int, response, exception):
        self.stats.inc_value("retry/max_reached")
        status = response.status if response is not None else None
        if request.meta.get("dead_letter", True):
            row = request_dead_letter(
                self.dead_letters, request, self.crawler.spider, reason, attempts=attempts, last_status=status
            )
            await self.dead_letters.record_rows([row])
            logger.warning(
                "gave up on %s after %d attempt(s): %s (dead letter recorded)", request.url, attempts, reason
            )
        else:
            logger.warning(
                "gave up on %s after %d attempt(s): %s (its sender records it)", request.url, attempts, reason
            )
        if response is None:
            return None  # the exception goes on to the request's errback
        if response.status == 200 or request.meta.get("block"):
            raise IgnoreRequest(f"gave up after {attempts} attempt(s): {reason} (dead letter recorded)")
        return response
