"""The ``scans`` row of a person search: created or resumed when the spider opens,
counters kept from signals, status set when it closes.

A spider takes part by having a ``scan`` attribute (a ScanContext). The
search parameters are stored encrypted; only a blind index of the full name
is kept for lookups.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
from scrapy import signals

from crawler import signals as project_signals
from crawler.db.pool import run_in_transaction
from crawler.items import TableRows
from crawler.security import context, keyring_from_settings
from crawler.spider_args import PersonQuery

logger = logging.getLogger(__name__)


@dataclass
class Website:
    id: str
    name: str
    base_url: str
    render_mode: str = "http"


@dataclass
class ScanContext:
    scan_id: str
    query: PersonQuery
    websites: list[Website] = field(default_factory=list)


UPSERT_WEBSITE = """
INSERT INTO websites (id, name, base_url, render_mode) VALUES (%s, %s, %s, %s)
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, base_url = EXCLUDED.base_url,
    render_mode = EXCLUDED.render_mode, updated_at = now()"""

START_SCAN = """
INSERT INTO scans (id, status, spider, target_ciphertext, target_name_index, sites, started_at)
VALUES (%s, 'running', %s, %s, %s, %s, now())
ON CONFLICT (id) DO UPDATE SET status = 'running', started_at = coalesce(scans.started_at, now()),
    finished_at = NULL, error = NULL, updated_at = now()"""

FINISH_SCAN = """
UPDATE scans SET status = %s, error = %s, counters = %s, finished_at = now(), updated_at = now()
WHERE id = %s"""


def final_status(reason: str) -> str:
    if reason == "finished":
        return "completed"
    return "cancelled" if reason == "shutdown" else "failed"


class ScanTracker:
    def __init__(self, crawler):
        self.crawler = crawler
        self.listings: Counter[str] = Counter()
        self.errors: dict[str, Counter[str]] = defaultdict(Counter)
        self.blocks: dict[str, Counter[str]] = defaultdict(Counter)

    @classmethod
    def from_crawler(cls, crawler):
        tracker = cls(crawler)
        crawler.signals.connect(tracker.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(tracker.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(tracker.spider_error, signal=signals.spider_error)
        crawler.signals.connect(tracker.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(tracker.block_detected, signal=project_signals.block_detected)
        return tracker

    def block_detected(self, request, kind, domain):
        """A captcha or block page is reported on the scan, never counted as "no results"."""
        scan: ScanContext | None = getattr(self.crawler.spider, "scan", None)
        if scan is None:
            return
        site = next((w.id for w in scan.websites if urlsplit(w.base_url).hostname == domain), domain)
        self.blocks[site][kind] += 1

    async def spider_opened(self, spider):
        scan: ScanContext | None = getattr(spider, "scan", None)
        if scan is None:
            return
        ring = keyring_from_settings(self.crawler.settings)
        target = ring.encrypt(orjson.dumps(scan.query.as_dict()), context.scan_target(scan.scan_id))
        async def start(conn):
            for site in scan.websites:
                await conn.execute(UPSERT_WEBSITE, (site.id, site.name, site.base_url, site.render_mode))
            await conn.execute(
                START_SCAN,
                (scan.scan_id, spider.name, target, ring.blind_index(scan.query.full_name), [w.id for w in scan.websites]),
            )

        await run_in_transaction(self.crawler.settings, start)
        logger.info("scan %s running on %d site(s)", scan.scan_id, len(scan.websites))

    def item_scraped(self, item, spider):
        # a listing reaches this signal already sealed into findings rows
        if isinstance(item, TableRows) and item.table == "findings":
            self.listings[item.source] += 1

    def spider_error(self, failure, response, spider):
        site = getattr(spider, "site_id", spider.name)
        self.errors[site][type(failure.value).__name__] += 1

    def counters(self) -> dict:
        sites = set(self.listings) | set(self.errors) | set(self.blocks)
        return {
            s: {"listings": self.listings[s], "errors": dict(self.errors[s]), "blocks": dict(self.blocks[s])}
            for s in sorted(sites)
        }

    async def spider_closed(self, spider, reason):
        scan: ScanContext | None = getattr(spider, "scan", None)
        if scan is None:
            return
        status = final_status(reason)
        values = (status, None if status == "completed" else reason, orjson.dumps(self.counters()).decode(), scan.scan_id)

        async def finish(conn):
            await conn.execute(FINISH_SCAN, values)

        await run_in_transaction(self.crawler.settings, finish)
        logger.info("scan %s %s: %d listing(s)", scan.scan_id, status, sum(self.listings.values()))
