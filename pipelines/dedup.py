"""Drops what is already stored and groups listings of the same person.

- Person listings, **exact**: a keyed fingerprint of (scan, site, listing URL)
  checked in one pipelined round trip (Redis, shared by all workers, within
  DEDUP_WINDOW_SECONDS; in process without REDIS_URL). A duplicate listing is
  dropped. Fingerprints are marked only after their rows are committed, so a
  crash never hides an unstored listing.
- Person listings, **fuzzy**: nicknames, typos, phone formats... the same
  person on several pages or sites joins one listing group; each merge is
  recorded in ``listing_merges`` with its score and evidence.
- Event rows, **Bloom**: ids are checked-and-set in a Bloom filter per source
  (Redis bitmaps, one atomic Lua call per page, so of two workers only one sees
  an id as new; register-blocked, crawler/dedup/blocked_bloom.py: one 53-bit
  word per id keeps Redis's CPU per id several times lower). Rows it has never seen take the writer's fast path (direct
  COPY); rows it may have seen go through ``INSERT ... ON CONFLICT DO NOTHING``.
  Nothing is dropped on the filter's word: a false positive, or an id marked by
  a worker that died before committing, would otherwise lose a record.
  PostgreSQL decides. Duplicate ids inside one page are dropped before that.

Runs before encryption: fuzzy matching needs the clear values, which never
leave this process; only keyed hashes reach Redis. Dedup only saves work, so
when Redis fails or is slow the rows go on (through ON CONFLICT) and the
error is counted; at most DEDUP_MAX_IN_FLIGHT filter calls wait on Redis at once.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from scrapy.exceptions import DropItem

from crawler.db.writer import BulkWriter
from crawler.dedup.blocked_bloom import BlockedBloomFilter
from crawler.dedup.bloom import LocalBloomFilter
from crawler.dedup.exact import LocalExactDedup, RedisExactDedup
from crawler.dedup.fuzzy import FuzzyListingDedup
from crawler.items import PersonListing, TableRows
from crawler.security import keyring_from_settings
from crawler.shared_redis import redis_for

logger = logging.getLogger(__name__)

MERGE_COLUMNS = (
    "scan_id",
    "website_id",
    "listing_url_index",
    "merged_with_index",
    "listing_group",
    "score",
    "evidence",
)


class DedupPipeline:
    def __init__(self, crawler):
        settings = crawler.settings
        self.settings = settings
        self.stats = crawler.stats
        self.writer = BulkWriter.for_crawler(crawler)
        self.keyring = keyring_from_settings(settings)
        self.window = settings.getint("DEDUP_WINDOW_SECONDS")
        self.bloom_capacity = settings.getint("DEDUP_BLOOM_CAPACITY")
        self.bloom_error_rate = settings.getfloat("DEDUP_BLOOM_ERROR_RATE")
        self.prefix = settings.get("REDIS_KEY_PREFIX")
        # two ages of one person differ by what the matcher tolerates too
        self.fuzzy = FuzzyListingDedup(
            settings.getfloat("DEDUP_FUZZY_THRESHOLD"), settings.getint("MATCH_AGE_TOLERANCE")
        )
        self.in_flight = asyncio.Semaphore(settings.getint("DEDUP_MAX_IN_FLIGHT"))
        self.redis = redis_for(crawler)  # the crawler's shared client (closed when the engine stops)
        self.exact = None
        self.blooms: dict[str, BlockedBloomFilter | LocalBloomFilter] = {}

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    async def open_spider(self):
        await self.writer.open()
        if self.redis is not None:
            self.exact = RedisExactDedup(self.redis, self.prefix, self.window)
        else:
            self.exact = LocalExactDedup(self.window)

    async def close_spider(self):
        await self.writer.close()  # runs the last after-commit marks first
        self.log_summary()

    async def process_item(self, item):
        if isinstance(item, PersonListing):
            return await self.dedup_listing(item)
        if isinstance(item, TableRows) and item.table == "events":
            return await self.dedup_events(item)
        return item

    def log_summary(self) -> None:
        """Per source: records seen and the share found duplicate (no personal data)."""
        stats = self.stats.get_stats()
        for kind in ("listings", "events"):
            for key, seen in stats.items():
                prefix = f"dedup/{kind}/seen/"
                if not key.startswith(prefix) or not seen:
                    continue
                source = key[len(prefix) :]
                duplicates = (
                    stats.get(f"dedup/{kind}/duplicate/{source}", 0)
                    + stats.get(f"dedup/{kind}/duplicate_in_page/{source}", 0)
                    + stats.get(f"dedup/{kind}/maybe_seen/{source}", 0)
                )
                logger.info(
                    "dedup %s from %s: %d seen, %d duplicate or maybe seen (%.1f%%)",
                    kind,
                    source,
                    seen,
                    duplicates,
                    100 * duplicates / seen,
                )

    async def ask(self, call, fingerprints: list[str], default):
        """A filter call that never fails the item: on error, ``default`` for each fingerprint."""
        if not fingerprints:
            return []
        async with self.in_flight:
            try:
                return await call(fingerprints)
            except Exception as exc:  # Redis down or slow: dedup degrades, rows go on
                self.stats.inc_value(f"dedup/errors/{type(exc).__name__}")
                logger.warning(
                    "dedup filter unavailable (%s); %d record(s) passed on unchecked",
                    type(exc).__name__,
                    len(fingerprints),
                )
                result = [default] * len(fingerprints)
                return None if default is None else result

    # --- person listings -----------------------------------------------------

    async def dedup_listing(self, item: PersonListing) -> PersonListing:
        fingerprint = self.keyring.blind_index(f"listing|{item.scan_id}|{item.site}|{item.listing_url}").hex()
        self.stats.inc_value(f"dedup/listings/seen/{item.site}")
        seen = await self.ask(self.exact.seen, [fingerprint], default=False)
        if seen[0]:
            self.stats.inc_value(f"dedup/listings/duplicate/{item.site}")
            raise DropItem(f"duplicate listing on {item.site} (already stored for this scan)", log_level="DEBUG")
        decision = self.fuzzy.assign(item)
        if decision is not None:
            self.stats.inc_value(f"dedup/listings/merged/{item.site}")
            row = (
                item.scan_id,
                item.site,
                self.keyring.blind_index(item.listing_url),
                self.keyring.blind_index(decision.merged_with_url),
                decision.group_id,
                decision.score,
                orjson.dumps(decision.evidence).decode(),
            )
            await self.writer.add("listing_merges", MERGE_COLUMNS, [row])

        async def mark():
            await self.ask(self.exact.mark, [fingerprint], default=None)

        item.on_commit.append(mark)  # marked once its findings rows are committed
        return item

    # --- events ----------------------------------------------------------------

    def bloom_for(self, source: str):
        bloom = self.blooms.get(source)
        if bloom is None:
            name = f"events:{source}"
            if self.redis is not None:
                bloom = BlockedBloomFilter(
                    self.redis, name, self.bloom_capacity, self.bloom_error_rate, prefix=self.prefix
                )
            else:
                bloom = LocalBloomFilter(name, self.bloom_capacity, self.bloom_error_rate)
            self.blooms[source] = bloom
        return bloom

    async def dedup_events(self, item: TableRows) -> TableRows:
        """One atomic check-and-set per page: ids the filter has never seen take the
        fast path; the rest (repeats, false positives) go through ON CONFLICT."""
        unique: dict[str, tuple] = {}
        for row in item.rows:
            unique.setdefault(row[0], row)  # first occurrence of an id within the page
        in_page = len(item.rows) - len(unique)
        # on a filter error every row counts as "maybe seen": ON CONFLICT decides
        new = await self.ask(self.bloom_for(item.source).check_and_add, list(unique), default=False)
        rows = list(unique.values())
        item.fresh_rows = [row for row, is_new in zip(rows, new, strict=True) if is_new]
        item.rows = [row for row, is_new in zip(rows, new, strict=True) if not is_new]
        stats, source = self.stats, item.source
        stats.inc_value(f"dedup/events/seen/{source}", len(item.rows) + len(item.fresh_rows) + in_page)
        stats.inc_value(f"dedup/events/duplicate_in_page/{source}", in_page)
        stats.inc_value(f"dedup/events/maybe_seen/{source}", len(item.rows))
        return item
