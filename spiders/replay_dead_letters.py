"""Re-queue requests that exhausted their retries (or waited at shutdown).

    scrapy crawl replay_dead_letters [-a spider=NAME] [-a reason=REASON] [-a limit=N]

Reads pending ``dead_letters`` rows of kind ``request`` (oldest first), decrypts
each serialised request and crawls it again with the callbacks of the spider
that made it (rebuilt from its original arguments, kept in the encrypted
payload). A row is marked replayed once its request has a final response
(after any retries); if it fails again, the retry middleware writes a new dead letter.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
import scrapy
from scrapy import signals
from scrapy.spiderloader import get_spider_loader

from crawler.db.pool import get_pool, run_in_transaction
from crawler.dead_letters import deserialize_request
from crawler.items import TableRows
from crawler.security import context, keyring_from_settings
from crawler.spider_args import SpiderArgumentError
from crawler.store import stats

logger = logging.getLogger(__name__)

PENDING = """
SELECT id, spider, payload_ciphertext FROM dead_letters
WHERE kind = 'request' AND replayed_at IS NULL AND payload_ciphertext IS NOT NULL
  AND (%(spider)s::text IS NULL OR spider = %(spider)s) AND (%(reason)s::text IS NULL OR reason = %(reason)s)
ORDER BY id LIMIT %(limit)s
"""
MARK = "UPDATE dead_letters SET replayed_at = now() WHERE id = %s AND replayed_at IS NULL"
META_ID = "replayed_dead_letter"


class ReplayDeadLettersSpider(scrapy.Spider):
    name = "replay_dead_letters"

    def __init__(self, spider: str | None = None, reason: str | None = None, limit: str = "100000", **kwargs):
        super().__init__(**kwargs)
        if spider == self.name:
            raise SpiderArgumentError("spider", "cannot replay the replay spider's own dead letters")
        if not str(limit).isdigit() or int(limit) < 1:
            raise SpiderArgumentError("limit", f"expected a whole number >= 1, got {limit!r}")
        self.only_spider, self.only_reason, self.limit = spider or None, reason or None, int(limit)
        self.originals: dict[str, scrapy.Spider] = {}
        self.marking: set[asyncio.Task] = set()
        self.refused: set[str] = set()
        self.scans_with_findings: set[str] = set()  # scan ids the replay wrote findings to

    @classmethod
    def check_arguments(cls, kwargs: dict) -> dict:
        cls(**{k: v for k, v in kwargs.items() if k in ("spider", "reason", "limit")})
        if (name := kwargs.get("spider")) and name != cls.name:
            from scrapy.utils.project import get_project_settings

            if name not in get_spider_loader(get_project_settings()).list():
                raise SpiderArgumentError("spider", f"no spider named {name!r}")
        return kwargs

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider.response_received, signal=signals.response_received)
        crawler.signals.connect(spider.finish_marking, signal=signals.spider_closed)
        crawler.signals.connect(spider.findings_stored, signal=signals.item_scraped)
        return spider

    def findings_stored(self, item, **_):
        """Scans that get findings now, after they finished: their stored counts are made again."""
        if isinstance(item, TableRows) and item.table == "findings" and item.rows:
            column = item.columns.index("scan_id")
            self.scans_with_findings.update(str(row[column]) for row in item.rows)

    def replayable(self, name: str) -> bool:
        """Spiders that recover by themselves (the events spider resumes from its
        checkpoints) say ``replayable = False``: their rows stay pending, untouched."""
        cls = get_spider_loader(self.settings).load(name)
        if getattr(cls, "replayable", True):
            return True
        if name not in self.refused:
            self.refused.add(name)
            logger.warning(
                "dead letters of %s are not replayed: run `scrapy crawl %s` again instead "
                "(it resumes from its checkpoints)",
                name,
                name,
            )
        self.crawler.stats.inc_value(f"replay/not_replayable/{name}")
        return False

    def original(self, name: str, arguments: dict | None) -> scrapy.Spider:
        """The spider that made a request, rebuilt so its callbacks have their state."""
        key = f"{name}|{orjson.dumps(arguments or {}, option=orjson.OPT_SORT_KEYS).decode()}"
        if key not in self.originals:
            cls = get_spider_loader(self.settings).load(name)
            try:
                spider = cls(**(arguments or {}))
            except (TypeError, ValueError):  # SpiderArgumentError is a ValueError
                spider = cls.__new__(cls)
                scrapy.Spider.__init__(spider, name=name)
            spider.crawler, spider.settings = self.crawler, self.crawler.settings
            self.originals[key] = spider
        return self.originals[key]

    def original_for(self, item) -> scrapy.Spider | None:
        """The rebuilt spider whose scan an item belongs to: the match pipeline scores a replayed
        listing against that scan's target, as the first crawl would have."""
        scan_id = getattr(item, "scan_id", None)
        for spider in self.originals.values():
            scan = getattr(spider, "scan", None)
            if scan is not None and scan_id is not None and str(scan.scan_id) == str(scan_id):
                return spider
        return None

    async def start(self):
        pool = await get_pool(self.settings)
        ring = keyring_from_settings(self.settings)
        async with pool.connection() as conn:
            cursor = await conn.execute(
                PENDING, {"spider": self.only_spider, "reason": self.only_reason, "limit": self.limit}
            )
            rows = await cursor.fetchall()
        logger.info("replaying %d dead-lettered request(s)", len(rows))
        for row_id, spider_name, sealed in rows:
            payload = orjson.loads(ring.decrypt(sealed, context.dead_letter("request", spider_name)))
            if not self.replayable(spider_name):
                continue
            try:
                original = self.original(spider_name, payload.get("spider_args"))
                request = deserialize_request(payload["request"], original)
            except (KeyError, ValueError) as exc:
                logger.error("dead letter %d cannot be replayed: %s", row_id, exc)
                self.crawler.stats.inc_value("replay/unreplayable")
                continue
            request.meta[META_ID] = row_id
            self.crawler.stats.inc_value("replay/requeued")
            yield request.replace(dont_filter=True)

    def response_received(self, response, request, spider):
        """A final response came back (retries done): its dead letter is done with; if it failed
        again, the retry middleware has written a new one. (The signal is sent synchronously, so
        the write runs as a task, awaited before the spider closes.)"""
        if (row_id := request.meta.get(META_ID)) is not None:

            async def mark(conn):
                await conn.execute(MARK, (row_id,))

            task = asyncio.get_running_loop().create_task(run_in_transaction(self.settings, mark))
            self.marking.add(task)
            task.add_done_callback(self.marking.discard)
            self.crawler.stats.inc_value("replay/replayed")

    async def finish_marking(self, spider, reason):
        if self.marking:
            await asyncio.gather(*self.marking)
        await stats.resummarise(self.settings, self.scans_with_findings)
