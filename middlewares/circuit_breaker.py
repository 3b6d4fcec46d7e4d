"""Circuit breaker per site (or domain), shared by every worker.

The circuit's key is ``meta["circuit_key"]``, else ``meta["site"]`` (a broker's
site definition id: brokers sharing a host, or one broker on several hosts,
each get one circuit), else the request's host.

CIRCUIT_FAILURE_THRESHOLD failures (5xx, timeouts, connection errors, detected
captcha/interstitial/blocked pages) within CIRCUIT_WINDOW_SECONDS open the
key's circuit: its requests are deferred (never dropped) until
CIRCUIT_RESET_SECONDS have passed; then exactly one probe goes through (across
all workers). Success closes the circuit, failure opens it again. Other sites
are unaffected: deferred requests wait in the scheduler, not in a download slot.
Per-site threshold: the spider's ``circuit_failure_threshold`` attribute.
State changes are logged, counted in stats and sent as the ``circuit_changed``
signal (domain = the circuit's key, state).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

from scrapy.exceptions import IgnoreRequest, NotConfigured
from scrapy.utils.httpobj import urlparse_cached

from crawler.config import flag
from crawler.resilience.circuits import PASS, PROBE, Gate, LocalCircuits, RedisCircuits
from crawler.resilience.fallback import SharedOrLocal
from crawler.scheduling.deferring import defer
from crawler.shared_redis import redis_for
from crawler.signals import circuit_changed

logger = logging.getLogger(__name__)

PROBE_META = "_circuit_probe"
FAILING_BLOCKS = frozenset({"captcha", "interstitial", "blocked"})
CLOSED = Gate(PASS)


def circuit_key(request) -> str:
    """Which circuit a request belongs to: its site's, else its host's."""
    meta = request.meta
    return meta.get("circuit_key") or meta.get("site") or urlparse_cached(request).hostname or ""


class CircuitBreakerMiddleware:
    def __init__(self, crawler):
        settings = crawler.settings
        if not flag(settings, "CIRCUIT_ENABLED"):
            raise NotConfigured
        self.crawler = crawler
        self.stats = crawler.stats
        reset_ms = settings.getfloat("CIRCUIT_RESET_SECONDS") * 1000
        probe_ttl_ms = (settings.getfloat("DOWNLOAD_TIMEOUT") + 10) * 1000
        threshold = settings.getint("CIRCUIT_FAILURE_THRESHOLD")
        window_ms = settings.getfloat("CIRCUIT_WINDOW_SECONDS") * 1000
        # a closed circuit is remembered this long, saving a Redis round trip per request;
        # a circuit another worker opens is seen at most this late (this worker's own failures at once)
        self.closed_cache = settings.getfloat("CIRCUIT_CLOSED_CACHE_SECONDS")
        self.known_closed: dict[str, float] = {}
        self.asking: dict[str, asyncio.Future] = {}  # domain -> "closed?" of the gate call on its way
        redis = redis_for(crawler)
        if redis is not None:  # shared by all workers; this worker's own while Redis fails
            shared = RedisCircuits(
                redis, settings.get("REDIS_KEY_PREFIX"), reset_ms, probe_ttl_ms, threshold, window_ms
            )
            local = LocalCircuits(reset_ms, probe_ttl_ms, threshold, window_ms)
            self.circuits = SharedOrLocal(shared, local, crawler.stats, "circuit")
        else:
            self.circuits = LocalCircuits(reset_ms, probe_ttl_ms, threshold, window_ms)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def process_request(self, request):
        if request.meta.get("dont_circuit"):
            return None
        domain = circuit_key(request)
        if self.known_closed.get(domain, 0.0) > time.monotonic():
            return None
        token = request.meta.get(PROBE_META) or uuid.uuid4().hex  # a deferred probe keeps its token
        gate = await self.gate(domain, token, share=PROBE_META not in request.meta)
        self.changed(domain, gate.change)
        if gate.decision == PROBE:
            request.meta[PROBE_META] = token
            self.stats.inc_value("circuit/probes")
            return None
        request.meta.pop(PROBE_META, None)
        if gate.decision == PASS:
            if self.closed_cache > 0:
                self.known_closed[domain] = time.monotonic() + self.closed_cache
            return None
        self.stats.inc_value("circuit/deferred")
        deferred = await defer(self.crawler, request, time.time() + gate.wait_ms / 1000, "circuit_open")
        return deferred if deferred is not None else await self.process_request(request)

    async def gate(self, domain: str, token: str, share: bool) -> Gate:
        """The circuit's answer. With the closed cache on, requests that arrive while a gate call for the
        domain is on its way wait for it and pass if it said closed (one round trip when the cache runs
        out, not one per request in flight); any other answer and they ask themselves (one probe)."""
        if not share or self.closed_cache <= 0:
            return await self.circuits.gate(domain, token)
        if (asking := self.asking.get(domain)) is not None:
            return CLOSED if await asyncio.shield(asking) else await self.circuits.gate(domain, token)
        asking = self.asking[domain] = asyncio.get_running_loop().create_future()
        closed = False
        try:
            gate = await self.circuits.gate(domain, token)
            closed = gate.decision == PASS
            return gate
        finally:
            del self.asking[domain]
            asking.set_result(closed)

    async def process_response(self, request, response):
        domain = circuit_key(request)
        probe = request.meta.pop(PROBE_META, "")
        if response.status >= 500 or request.meta.get("block") in FAILING_BLOCKS:
            await self.failed(domain, probe)
        else:
            self.changed(domain, await self.circuits.success(domain, probe))
        return response

    async def process_exception(self, request, exception):
        domain = circuit_key(request)
        probe = request.meta.pop(PROBE_META, "")
        if not isinstance(exception, IgnoreRequest):
            await self.failed(domain, probe)

    async def failed(self, domain: str, probe: str) -> None:
        self.known_closed.pop(domain, None)
        self.stats.inc_value("circuit/failures")
        threshold = getattr(self.crawler.spider, "circuit_failure_threshold", None)
        self.changed(domain, await self.circuits.failure(domain, probe, uuid.uuid4().hex, threshold))

    def changed(self, domain: str, change: str) -> None:
        if not change:
            return
        state = "open" if change in ("opened", "reopened") else change
        self.stats.inc_value(f"circuit/{change}")
        self.stats.set_value(f"circuit/state/{domain}", state)
        log = logger.warning if state == "open" else logger.info
        log("circuit %s: %s", domain, change.replace("_", "-"))
        self.crawler.signals.send_catch_log(circuit_changed, domain=domain, state=state)
