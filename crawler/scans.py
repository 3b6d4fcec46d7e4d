"""The ``scans`` row of a person search: created or resumed when the spider opens,
counters kept from signals, status set when it closes.

A spider takes part by having a ``scan`` attribute (a ScanContext). The
search parameters are stored encrypted; only a blind index of the full name
is kept for lookups. The SQL is crawler/store/scans.py's.
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
from crawler.items import TableRows
from crawler.spider_args import PersonQuery
from crawler.store import scans as store

logger = logging.getLogger(__name__)


@dataclass
class Website:
    id: str
    name: str
    base_url: str
    render_mode: str = "http"
    # from the site definition (spiders/sites/<id>.yaml), mirrored into the websites row
    enabled: bool = True
    definition: dict | None = None
    definition_sha256: str | None = None
    opt_out: dict | None = None

    def row(self) -> tuple:
        dumps = lambda value: None if value is None else orjson.dumps(value).decode()  # noqa: E731
        return (
            self.id,
            self.name,
            self.base_url,
            self.render_mode,
            self.enabled,
            dumps(self.definition),
            self.definition_sha256,
            dumps(self.opt_out),
        )


@dataclass
class ScanContext:
    scan_id: str
    query: PersonQuery
    websites: list[Website] = field(default_factory=list)


# Why a site's page was lost, as recorded on the scan row (counters[site]["errors"]).
# The first four come from the blocks middleware's ``block_detected``; the rest from ``scan_error``.
ERROR_KINDS = (
    "captcha",
    "interstitial",
    "rate_limited",
    "blocked",
    "not_found",
    "timeout",
    "parse_error",
    "server_error",
    "unreachable",
    "http_error",
    "browser_error",
    "screenshot_failed",
    "other",
)


def classify_failure(failure) -> str:
    """The scan error kind of a request's failure (an errback's ``failure``, or an exception).

    Spiders call it in their errback and send ``scan_error`` with the kind::

        def errback(self, failure):
            kind = classify_failure(failure)
            self.crawler.signals.send_catch_log(scan_error, scan_id=..., site=..., kind=kind, request=failure.request)
    """
    from scrapy import exceptions
    from scrapy.exceptions import IgnoreRequest
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.internet import error

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
    # Scrapy 2.19 wraps download errors in its own classes; older handlers raise Twisted's
    if isinstance(
        exc,
        error.TimeoutError
        | error.TCPTimedOutError
        | asyncio.TimeoutError
        | TimeoutError
        | exceptions.DownloadTimeoutError,
    ):
        return "timeout"
    if isinstance(
        exc,
        error.DNSLookupError
        | error.ConnectError
        | error.ConnectionLost
        | error.ConnectionDone
        | exceptions.DownloadConnectionRefusedError
        | exceptions.CannotResolveHostError
        | exceptions.DownloadFailedError
        | exceptions.ResponseDataLossError,
    ):
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


def site_outcome(counters: dict) -> str:
    """found | no_match (candidates, none accepted) | partial (some pages lost) | error (pages lost,
    nothing read) | no_results. A site whose pages were lost never reads as "no results"; blocks that
    were passed (an interstitial cookie, a rate limit waited out) lose nothing and do not count: a
    block whose retries ran out arrives as an error of its kind."""
    errors = sum(counters["errors"].values())
    matched = max(counters["accepted"], counters["stored"])
    if errors and (matched or counters["rejected"]):
        return "partial"
    if errors:
        return "error"
    if matched:
        return "found"
    return "no_match" if counters["rejected"] else "no_results"


def site_of(crawler, request=None, domain: str | None = None, site: str | None = None) -> str:
    """The site id a signal is about: given, the request's ``meta["site"]``, the scan website on that
    host, else the host itself."""
    if site:
        return site
    if request is not None and (meta_site := request.meta.get("site")):
        return meta_site
    domain = domain or (urlsplit(request.url).hostname if request is not None else "") or ""
    scan: ScanContext | None = getattr(crawler.spider, "scan", None)
    websites = scan.websites if scan is not None else []
    fallback = getattr(crawler.spider, "site_id", None) if len(websites) <= 1 else None
    return next((w.id for w in websites if urlsplit(w.base_url).hostname == domain), fallback or domain)


class ScanTracker:
    """Extension: the scan row. Counters per site come from the scan signals, are written
    every SCANS_UPDATE_SECONDS while they change, and once more with the final status;
    then ``scan_completed`` is sent (crawler.observability.scan_events publishes it)."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.interval = crawler.settings.getfloat("SCANS_UPDATE_SECONDS")
        self.stored: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.screenshots: Counter[str] = Counter()
        self.pages: dict[str, Counter[str]] = defaultdict(Counter)
        self.errors: dict[str, Counter[str]] = defaultdict(Counter)
        self.blocks: dict[str, Counter[str]] = defaultdict(Counter)
        self.dirty = False
        self.updater: asyncio.Task | None = None

    @classmethod
    def from_crawler(cls, crawler):
        tracker = cls(crawler)
        connect = crawler.signals.connect
        connect(tracker.spider_opened, signal=signals.spider_opened)
        connect(tracker.start_updates, signal=signals.spider_opened)
        connect(tracker.item_scraped, signal=signals.item_scraped)
        connect(tracker.spider_error, signal=signals.spider_error)
        connect(tracker.spider_closed, signal=signals.spider_closed)
        connect(tracker.block_detected, signal=project_signals.block_detected)
        connect(tracker.progress, signal=project_signals.scan_progress)
        connect(tracker.found_data, signal=project_signals.found_data)
        connect(tracker.candidate_rejected, signal=project_signals.candidate_rejected)
        connect(tracker.scan_error, signal=project_signals.scan_error)
        return tracker

    def scan(self) -> ScanContext | None:
        return getattr(self.crawler.spider, "scan", None)

    def ours(self, scan_id) -> bool:
        scan = self.scan()
        return scan is not None and (scan_id is None or str(scan_id) == str(scan.scan_id))

    def block_detected(self, request, kind, domain, **_):
        """A captcha or block page is reported on the scan, never counted as "no results"."""
        scan = self.scan()
        if scan is None:
            return
        site = site_of(self.crawler, request, domain)
        self.blocks[site][kind] += 1
        self.dirty = True

    def progress(self, scan_id, site, stage, counts=None, **_):
        if self.ours(scan_id):
            self.pages[site][stage] += 1
            self.dirty = True

    def found_data(self, scan_id, site, listing=None, confidence=None, **_):
        if self.ours(scan_id):
            self.accepted[site] += 1
            self.dirty = True

    def candidate_rejected(self, scan_id, site, listing=None, confidence=None, **_):
        if self.ours(scan_id):
            self.rejected[site] += 1
            self.dirty = True

    def scan_error(self, scan_id, site, kind, request=None, **_):
        if self.ours(scan_id):
            self.errors[site or site_of(self.crawler, request)][kind] += 1
            self.dirty = True

    async def spider_opened(self, spider):
        scan: ScanContext | None = getattr(spider, "scan", None)
        if scan is None:
            return
        await store.start_scan(
            self.crawler.settings,
            scan.scan_id,
            spider.name,
            scan.query,
            [w.id for w in scan.websites],
            [w.row() for w in scan.websites],
        )
        logger.info("scan %s running on %d site(s)", scan.scan_id, len(scan.websites))

    def item_scraped(self, item, spider):
        # a listing reaches this signal already sealed into findings rows
        if isinstance(item, TableRows) and item.table == "findings":
            self.stored[item.source] += 1
            if "screenshot_sha256" in item.columns and item.rows:
                self.screenshots[item.source] += bool(item.rows[0][item.columns.index("screenshot_sha256")])
            self.dirty = True

    def spider_error(self, failure, response, spider):
        # a callback that raised could not read its page
        self.errors[site_of(self.crawler, response.request if response is not None else None)]["parse_error"] += 1
        self.dirty = True

    def counters(self) -> dict:
        scan = self.scan()
        sites = {w.id for w in scan.websites} if scan is not None else set()
        sites |= set(self.stored) | set(self.accepted) | set(self.rejected) | set(self.pages)
        sites |= set(self.errors) | set(self.blocks)
        result = {}
        for s in sorted(sites):
            c = {
                # candidates seen: scored by the match pipeline, or stored without it
                "listings": self.rejected[s] + max(self.accepted[s], self.stored[s]),
                "accepted": self.accepted[s],
                "rejected": self.rejected[s],
                "stored": self.stored[s],
                "screenshots": self.screenshots[s],
                "pages": dict(self.pages[s]),
                "errors": dict(self.errors[s]),
                "blocks": dict(self.blocks[s]),
            }
            c["outcome"] = site_outcome(c)
            result[s] = c
        return result

    async def start_updates(self, spider):
        if getattr(spider, "scan", None) is not None and self.interval > 0:
            self.updater = asyncio.get_running_loop().create_task(self.update_loop())

    async def update_loop(self) -> None:
        """Counters on the row while the scan runs, at most every SCANS_UPDATE_SECONDS."""
        scan_id = self.scan().scan_id
        while True:
            await asyncio.sleep(self.interval)
            if not self.dirty:
                continue
            self.dirty = False
            try:
                await store.update_counters(self.crawler.settings, scan_id, self.counters())
                self.crawler.stats.inc_value("scans/counter_updates")
            except Exception as exc:  # a missed update is repaired by the next one or the final write
                self.dirty = True
                logger.warning("scan %s: counters not updated (%s)", scan_id, type(exc).__name__)

    async def spider_closed(self, spider, reason):
        scan: ScanContext | None = getattr(spider, "scan", None)
        if self.updater is not None:
            self.updater.cancel()
        if scan is None:
            return
        status, counters = final_status(reason), self.counters()
        error = None if status == "completed" else reason
        outcomes = {s: c["outcome"] for s, c in counters.items()}
        if status == "completed" and outcomes and all(o == "error" for o in outcomes.values()):
            # nothing could be checked anywhere: the scan failed, whatever the crawl's own reason
            status = "failed"
            error = "every site failed: " + "; ".join(
                f"{s} " + ",".join(sorted({**counters[s]["errors"], **counters[s]["blocks"]})) for s in sorted(counters)
            )
        await store.finish_scan(self.crawler.settings, scan.scan_id, status, error, counters)
        self.crawler.stats.set_value("scans/status", status)
        await self.crawler.signals.send_catch_log_async(
            project_signals.scan_completed, scan_id=scan.scan_id, status=status, counters=counters
        )
