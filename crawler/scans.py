"""The ``scans`` row of a person search: created or resumed when the spider opens,
counters kept from signals, status set when it closes.

A spider takes part by having a ``scan`` attribute (a ScanContext). The
search parameters are stored encrypted; only a blind index of the full name
is kept for lookups.
"""

from __future__ import annotations

import asyncio
import logging
import re
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


# Why a site's page was lost, as recorded on the scan row (counters[site]["errors"]).
# The first four come from the blocks middleware's ``block_detected``; the rest from ``scan_error``.
ERROR_KINDS = ("captcha", "interstitial", "rate_limited", "blocked", "not_found", "timeout", "parse_error",
               "server_error", "unreachable", "http_error", "browser_error", "screenshot_failed", "other")


def classify_failure(failure) -> str:
    """The scan error kind of a request's failure (an errback's ``failure``, or an exception).

    Spiders call it in their errback and send ``scan_error`` with the kind::

        def errback(self, failure):
            kind = classify_failure(failure)
            self.crawler.signals.send_catch_log(scan_error, scan_id=..., site=..., kind=kind, request=failure.request)
    """
    from scrapy.exceptions import IgnoreRequest  # noqa: PLC0415
    from scrapy.spidermiddlewares.httperror import HttpError  # noqa: PLC0415
    from twisted.internet import error  # noqa: PLC0415

    exc = getattr(failure, "value", failure)
    if isinstance(exc, HttpError):
        status = exc.response.status
        if status in (404, 410):
            return "not_found"
        if status == 429:
            return "rate_limited"
        if status in (401, 403, 451):
            return "blocked"
        return "server_error" if status >= 500 else "http_error"
    if isinstance(exc, error.TimeoutError | error.TCPTimedOutError | asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, error.DNSLookupError | error.ConnectError | error.ConnectionLost | error.ConnectionDone):
        return "unreachable"
    if isinstance(exc, IgnoreRequest):
        # the retry middleware gave up on a block page: "... block_captcha (dead letter recorded)"
        request = getattr(failure, "request", None)
        block = request.meta.get("block") if request is not None else None
        if block is None and (match := re.search(r"\bblock_(\w+)", str(exc))):
            block = match.group(1)
        return block if block in ERROR_KINDS else "blocked"
    name = type(exc).__name__
    module = type(exc).__module__
    if module.startswith("playwright"):  # playwright's TimeoutError is its own class
        return "timeout" if name == "TimeoutError" else "browser_error"
    if "ResponseNeverReceived" in name or "ResponseFailed" in name or "PotentialDataLoss" in name:
        return "unreachable"
    return "other"


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
