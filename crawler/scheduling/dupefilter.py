"""Request dupefilters on Redis, shared by every worker of a job.

scrapy-redis's RFPDupeFilter hashes its own (method, canonical URL, body)
JSON and ignores the project's REQUEST_FINGERPRINTER; these use
``crawler.request_fingerprinter`` like Scrapy's own RFPDupeFilter.

- ``RedisDupeFilter``: exact, a Redis SET of hex fingerprints (~100 B each).
- ``BloomDupeFilter`` (SCHEDULER_DUPEFILTER_BLOOM=true): the scalable Bloom
  filter of crawler/dedup/bloom.py (one atomic Lua call per request), about
  1.8 B per fingerprint at 0.1 % false positives; a false positive skips a
  request that was never crawled, so keep it for very large crawls.
"""

from __future__ import annotations

from scrapy_redis.dupefilter import RFPDupeFilter

from crawler.dedup.bloom import BloomFilter, digest
from crawler.scheduling.sealed import keyed_fingerprint
from crawler.security import keyring_from_settings


class RedisDupeFilter(RFPDupeFilter):
    def __init__(self, server, key, debug=False, fingerprinter=None, stats=None, ring=None):
        super().__init__(server, key, debug)
        self.fingerprinter = fingerprinter
        self.stats = stats
        self.ring = ring

    @classmethod
    def for_scheduler(cls, server, key: str, crawler):
        return cls(
            server,
            key,
            debug=crawler.settings.getbool("DUPEFILTER_DEBUG"),
            fingerprinter=crawler.request_fingerprinter,
            stats=crawler.stats,
            ring=keyring_from_settings(crawler.settings),
        )

    def request_fingerprint(self, request) -> str:
        if self.fingerprinter is None:
            return super().request_fingerprint(request)
        fingerprint = self.fingerprinter.fingerprint(request)
        # keyed: a bare SHA-1 of a search URL is reversed by hashing common names
        return keyed_fingerprint(self.ring, fingerprint) if self.ring is not None else fingerprint.hex()

    def request_seen(self, request) -> bool:
        seen = super().request_seen(request)
        if seen and self.stats:
            self.stats.inc_value("dupefilter/filtered")
        return seen

    # The shared scheduler checks and marks in the same Lua step as its push (``atomic_seen``):
    # marking first could lose a request for good (its worker killed before the push), marking
    # after could let two workers queue one request. ``seen`` is the cheap early check that
    # spares encoding a request already seen.
    def atomic_seen(self, request) -> tuple[str, str] | None:
        """(set key, fingerprint) for the queue's push to check and mark atomically."""
        return self.key, self.request_fingerprint(request)

    def seen(self, request) -> bool:
        seen = bool(self.server.sismember(self.key, self.request_fingerprint(request)))
        if seen and self.stats:
            self.stats.inc_value("dupefilter/filtered")
        return seen

    def mark(self, request) -> None:
        self.server.sadd(self.key, self.request_fingerprint(request))

    def bind_async(self, client) -> None:
        """The shared scheduler's ``redis.asyncio`` client (the exact set needs none: see ``atomic_seen``)."""

    async def acontains(self, fingerprints: list[str]) -> list[bool]:
        """Present flags, for filters whose check cannot be part of the push (the Bloom filter)."""
        return [False] * len(fingerprints)

    async def amark(self, fingerprints: list[str]) -> None:
        """Mark fingerprints seen once their requests are queued (the Bloom filter)."""

    async def akeys(self) -> list[str]:
        return [self.key]

    def close(self, reason=""):
        """Keep the shared fingerprints: the scheduler decides when a job's state goes (see shared.py)."""

    def keys(self) -> list[str]:
        return [self.key]


class BloomDupeFilter(RedisDupeFilter):
    def __init__(
        self, server, key, debug=False, fingerprinter=None, stats=None, ring=None, capacity=10_000_000, error_rate=0.001
    ):
        super().__init__(server, key, debug, fingerprinter, stats, ring)
        # BloomFilter's key layout and Lua script; the synchronous client serves tools and tests,
        # the scheduler's asyncio client (bind_async) the crawl
        # keys "<key>:bloom:{fp}:..."; the job's {hash tag} comes first, so one Cluster slot
        self.bloom = BloomFilter(server, name="fp", capacity=capacity, error_rate=error_rate, prefix=f"{key}:")
        self.abloom: BloomFilter | None = None

    def bind_async(self, client) -> None:
        bloom = self.bloom
        self.abloom = BloomFilter(client, "fp", bloom.capacity, bloom.error_rate, prefix=f"{self.key}:")

    async def acontains(self, fingerprints: list[str]) -> list[bool]:
        return await self.abloom.contains(fingerprints)

    async def amark(self, fingerprints: list[str]) -> None:
        await self.abloom.check_and_add(fingerprints)

    async def akeys(self) -> list[str]:
        return await self.abloom.keys()

    @classmethod
    def for_scheduler(cls, server, key: str, crawler):
        settings = crawler.settings
        return cls(
            server,
            key,
            debug=settings.getbool("DUPEFILTER_DEBUG"),
            fingerprinter=crawler.request_fingerprinter,
            stats=crawler.stats,
            ring=keyring_from_settings(settings),
            capacity=settings.getint("SCHEDULER_BLOOM_CAPACITY"),
            error_rate=settings.getfloat("SCHEDULER_BLOOM_ERROR_RATE"),
        )

    def _bloom(self, mode: str, request) -> bytes:
        return self.bloom.script(
            keys=[self.bloom.meta_key, self.bloom.layer_prefix],
            args=[mode, self.bloom.capacity, self.bloom.error_rate, digest(self.request_fingerprint(request))],
        )

    def request_seen(self, request) -> bool:
        seen = self._bloom("add", request) != b"1"  # "1": newly added
        if seen and self.stats:
            self.stats.inc_value("dupefilter/filtered")
        return seen

    def seen(self, request) -> bool:
        seen = self._bloom("check", request) == b"1"  # "1": present
        if seen and self.stats:
            self.stats.inc_value("dupefilter/filtered")
        return seen

    def atomic_seen(self, request) -> None:
        """The Bloom filter is checked, then marked after the push: at worst a rare duplicate crawl."""
        return None

    def mark(self, request) -> None:
        self._bloom("add", request)

    def keys(self) -> list[str]:
        layers = int(self.server.hget(self.bloom.meta_key, "layers") or 0)
        return [self.bloom.meta_key, *(f"{self.bloom.layer_prefix}{n}" for n in range(layers))]

    def clear(self):
        if keys := self.keys():
            self.server.delete(*keys)
