"""BrokerSpider: a generic people-search spider driven by site definitions (spiders/sites/*.yaml).

    scrapy crawl <site id> -a first_name=Jane -a last_name=Doe [-a state=IL -a city=... -a age=...
                           -a email=... -a phone=... -a scan_id=UUID -a base_url=http://...]
    scrapy crawl <site id> -a scan_id=UUID     # a scan created with python -m crawler.store create-scan

With ``scan_id`` alone the person is read (decrypted) from the scans row; that is the only form a
scrapyd job accepts (crawler.spider_args.refuse_job_arguments).

search request(s) from the query -> result pages (next pages up to SITES_MAX_PAGES) -> every candidate's
detail page (up to SITES_MAX_CANDIDATES a site) -> one PersonListing per detail page. Candidates are not
judged here: the match pipeline scores them against ``self.scan.query``. Requests carry the site id in
``meta["site"]``, its rate (``ratelimit_key``/``ratelimit_rps``), block signatures and download slot, so
one crawl can run several sites (``spiders/scan.py``). Lost pages are reported with ``scan_error``
(not_found, timeout, parse_error...), handled pages with ``scan_progress``.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict

import scrapy
from scrapy.http import FormRequest
from scrapy_playwright.page import PageMethod

from crawler import signals as project_signals
from crawler.config import flag
from crawler.extraction import (
    SiteDefinition,
    detail_not_found,
    parse_base_urls,
    record_from_candidate,
)
from crawler.extraction.actions import page_methods
from crawler.extraction.engine import next_page_url
from crawler.extraction.templates import query_values, render, render_params
from crawler.observability.logs import register_pii
from crawler.scans import ScanContext, Website, classify_failure
from crawler.spider_args import (
    PERSONAL_ARGUMENTS,
    PersonQuery,
    SpiderArgumentError,
    parse_http_url,
    parse_person,
    parse_scan_id,
    refuse_job_arguments,
    wants_stored_scan,
)
from crawler.store.scans import load_stored_scan
from spiders.broker_healing import HealingMixin

logger = logging.getLogger(__name__)


def applicable_searches(definition: SiteDefinition, query: PersonQuery) -> list[dict]:
    """The first search entry whose required fields the query has, plus every ``additional`` one that applies."""
    values = query_values(query)
    chosen, primary = [], False
    for entry in definition.raw["search"]:
        if not all(values.get(name) for name in entry["requires"]):
            continue
        if entry.get("additional"):
            chosen.append(entry)
        elif not primary:
            chosen.append(entry)
            primary = True
    return chosen


def detail_screenshots(settings) -> bool:
    """Whether a browser-rendered detail page is captured while it is open (the evidence screenshot,
    which the screenshots pipeline would otherwise render a second time)."""
    pipelines = settings.getwithbase("ITEM_PIPELINES")
    if pipelines.get("pipelines.screenshots.ScreenshotPipeline") is None:
        return False
    return flag(settings, "SCREENSHOTS_ENABLED") if settings.get("SCREENSHOTS_ENABLED") else True


class BrokerSpider(HealingMixin, scrapy.Spider):
    """Subclasses set ``definition`` (spiders/sites/__init__.py makes one per YAML file)."""

    definition: SiteDefinition | None = None
    takes_person = True  # python -m crawler.store create-scan --spider accepts it

    @classmethod
    def site_definitions(cls, settings=None) -> dict[str, SiteDefinition]:
        """The sites this spider runs, with SITES_BASE_URLS applied."""
        overrides = parse_base_urls(settings.get("SITES_BASE_URLS")) if settings is not None else {}
        definition = cls.definition
        if definition.id in overrides:
            definition = definition.with_base_url(overrides[definition.id])
        return {definition.id: definition}

    @classmethod
    def chosen_sites(cls, kwargs: dict, settings=None) -> dict[str, SiteDefinition]:
        """The sites of this run (``-a base_url`` overrides the single site's address)."""
        sites = cls.site_definitions(settings)
        if "base_url" in kwargs and len(sites) == 1:
            ((site_id, definition),) = sites.items()
            sites = {site_id: definition.with_base_url(parse_http_url(kwargs, "base_url"))}
        return sites

    @classmethod
    def check_arguments(cls, kwargs: dict, settings=None) -> dict:
        refuse_job_arguments(kwargs)
        if wants_stored_scan(kwargs):
            # the target (and a scan spider's sites) come from the scans row, decrypted
            stored = load_stored_scan(kwargs, settings, cls.name)
            query = stored.query
            if getattr(cls, "runs_all_sites", False) and stored.sites and "sites" not in kwargs:
                kwargs = {**kwargs, "sites": ",".join(stored.sites)}
        else:
            query = parse_person(kwargs, settings)
        sites = cls.chosen_sites(kwargs, settings)
        runnable = {i: d for i, d in sites.items() if applicable_searches(d, query)}
        if not runnable:
            needs = sorted({f for d in sites.values() for e in d.raw["search"] for f in e["requires"]})
            raise SpiderArgumentError(needs[0] if needs else "last_name", "the site's search needs " + ", ".join(needs))
        return {"query": query, "scan_id": parse_scan_id(kwargs), "sites": runnable}

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        if cls.definition is None and not getattr(cls, "runs_all_sites", False):
            return
        # one download slot per site: sites sharing a host (the sandbox) keep their own concurrency
        slots = dict(settings.getdict("DOWNLOAD_SLOTS"))
        for site_id, definition in cls.site_definitions(settings).items():
            slots.setdefault(site_id, {"concurrency": definition.concurrency, "delay": 0})
        settings.set("DOWNLOAD_SLOTS", slots, priority="spider")

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        kwargs["_settings"] = crawler.settings
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.max_pages = crawler.settings.getint("SITES_MAX_PAGES")
        spider.max_candidates = crawler.settings.getint("SITES_MAX_CANDIDATES")
        spider.detail_screenshots = detail_screenshots(crawler.settings)
        spider.connect_healer(crawler)
        return spider

    def __init__(self, *args, **kwargs):
        settings = kwargs.pop("_settings", None)
        parsed = self.check_arguments(kwargs, settings)
        # kept for replaying dead letters (stored only inside their encrypted payload)
        self.spider_arguments = {k: v for k, v in kwargs.items() if not k.startswith("_") and isinstance(v, str)}
        for key in (*PERSONAL_ARGUMENTS, "base_url", "sites"):
            kwargs.pop(key, None)  # personal values stay in self.scan, not as loose attributes
        super().__init__(*args, **kwargs)
        query: PersonQuery = parsed["query"]
        register_pii(*query.pii_values())
        self.sites: dict[str, SiteDefinition] = parsed["sites"]
        self.values = query_values(query)
        self.max_pages, self.max_candidates = 5, 50
        self.detail_screenshots = False
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.seen_detail: dict[str, set[str]] = defaultdict(set)
        if len(self.sites) == 1:  # a single-site spider: the middlewares may read these attributes too
            (definition,) = self.sites.values()
            self.site_id = definition.id
            self.ratelimit_rps = definition.requests_per_minute / 60
            self.block_signatures = definition.blocks
            if definition.retry_times is not None:
                self.retry_times = definition.retry_times
        self.scan = ScanContext(
            scan_id=parsed["scan_id"],
            query=query,
            websites=[
                Website(
                    d.id,
                    d.name,
                    d.base_url,
                    d.render,
                    enabled=d.enabled,
                    definition=d.raw,
                    definition_sha256=d.sha256,
                    opt_out=d.opt_out,
                )
                for d in self.sites.values()
            ],
        )

    # ---- requests ---------------------------------------------------------------------------------

    def site_meta(self, definition: SiteDefinition, **extra) -> dict:
        meta = {
            "site": definition.id,
            "ratelimit_key": f"site:{definition.id}",
            "ratelimit_rps": definition.requests_per_minute / 60,
            "block_signatures": definition.blocks,
            "download_slot": definition.id,
            **extra,
        }
        if definition.retry_times is not None:
            meta["max_retry_times"] = definition.retry_times
        return meta

    def site_request(
        self, definition: SiteDefinition, url: str, callback, *, actions=None, entry=None, **meta
    ) -> scrapy.Request:
        meta = self.site_meta(definition, **meta)
        if entry is not None:
            meta["search_entry"] = entry
            if entry.get("json"):
                meta["expect_json"] = True
        if definition.render == "browser":
            meta["playwright"] = True
            methods = page_methods(actions, self.values) if actions else []
            if meta.get("stage") == "detail" and self.detail_screenshots:
                # the page is open and rendered: its evidence now, not a second render in the pipeline
                methods.append(PageMethod("screenshot", full_page=True, type="png"))
            if methods:
                meta["playwright_page_methods"] = methods
        headers = {**definition.raw.get("headers", {}), **((entry or {}).get("headers") or {})}
        return scrapy.Request(
            url,
            callback=callback,
            errback=self.errback,
            meta=meta,
            headers=headers or None,
            cookies=definition.raw.get("cookies") or None,
        )

    async def start(self):
        await self.open_healer()
        for definition in self.sites.values():
            for entry in applicable_searches(definition, self.scan.query):
                for request in self.search_requests(definition, entry):
                    yield request

    def search_requests(self, definition: SiteDefinition, entry: dict):
        base = definition.base_url
        if form := entry.get("form"):
            url = base + render(form["page"], self.values, encode=True)
            yield self.site_request(
                definition, url, self.submit_form, actions=entry.get("actions"), entry=entry, stage="search"
            )
            return
        url = base + render(entry["url"], self.values, encode=True)
        if params := render_params(entry.get("params") or {}, self.values):
            url += ("&" if "?" in url else "?") + params
        yield self.site_request(
            definition, url, self.parse_results, actions=entry.get("actions"), entry=entry, page=1, stage="search"
        )

    def submit_form(self, response):
        definition = self.sites[response.meta["site"]]
        entry = response.meta["search_entry"]
        form = entry["form"]
        fields = {name: render(template, self.values) for name, template in form["fields"].items()}
        self.progress(definition.id, "search")
        request = FormRequest.from_response(
            response,
            formcss=form.get("selector"),
            formdata=fields,
            callback=self.parse_results,
            errback=self.errback,
            dont_click=True,
            meta=self.site_meta(definition, search_entry=entry, page=1, stage="search"),
        )
        if definition.render == "browser":
            request.meta["playwright"] = True
        yield request

    # ---- pages ------------------------------------------------------------------------------------

    async def parse_results(self, response):
        definition = self.sites[response.meta["site"]]
        result = self.read_list(definition, response)
        if result is None:  # held for a heal (crawler.healing): read again once one is made
            page = response.meta.get("page", 1)
            next_url = next_page_url(definition, response, self.values)
            if next_url and page < self.max_pages:  # more pages of the kind to heal and verify on
                yield self.site_request(
                    definition,
                    next_url,
                    self.parse_results,
                    actions=definition.raw["list"].get("actions"),
                    entry=response.meta.get("search_entry"),
                    page=page + 1,
                    stage="results",
                )
            self.progress(definition.id, "search" if page == 1 else "results")
        else:
            for output in self.results_output(definition, response, result):
                yield output
        async for output in self.settle(definition.id, "list"):
            yield output

    def results_output(self, definition: SiteDefinition, response, result):
        page = response.meta.get("page", 1)
        listing = definition.raw["list"]
        counts = self.counts[definition.id]
        counts["pages"] += 1
        counts["candidates"] += len(result.candidates)
        if result.empty and not result.no_results:
            # neither cards nor the site's "no results" text: a changed layout, never "no results"
            self.error(definition.id, "parse_error", response.request)
        for candidate in result.candidates:
            url = candidate.get("url") or ""
            if not listing.get("follow", True):
                record = record_from_candidate(definition, candidate)
                if record.get("full_name"):
                    counts["listings"] += 1
                    yield self.listing(record, definition, url or response.url)
                continue
            if url in self.seen_detail[definition.id]:
                continue
            if len(self.seen_detail[definition.id]) >= self.max_candidates:
                counts["candidates_skipped"] += 1
                continue
            self.seen_detail[definition.id].add(url)
            meta = {"listing_url": url, "stage": "detail"}
            entry = response.meta.get("search_entry") or {}
            yield self.site_request(
                definition,
                candidate.get("fetch_url") or url,
                self.parse_detail,
                actions=definition.raw["detail"].get("actions"),
                entry={"json": True} if entry.get("json") and candidate.get("fetch_url") else None,
                **meta,
            )
        if result.next_url and page < self.max_pages:
            yield self.site_request(
                definition,
                result.next_url,
                self.parse_results,
                actions=listing.get("actions"),
                entry=response.meta.get("search_entry"),
                page=page + 1,
                stage="results",
            )
        elif result.next_url:
            counts["pages_skipped"] += 1
        self.progress(definition.id, "search" if page == 1 else "results")

    async def parse_detail(self, response):
        definition = self.sites[response.meta["site"]]
        if detail_not_found(definition, response):
            self.error(definition.id, "not_found", response.request)
            self.counts[definition.id]["details"] += 1
            self.progress(definition.id, "detail")
        else:
            record = self.read_detail(definition, response)
            if record is None:  # held for a heal, or a suspect (crawler.healing)
                self.progress(definition.id, "detail")
            else:
                for output in self.detail_output(definition, response, record):
                    yield output
        async for output in self.settle(definition.id, "detail"):
            yield output

    def detail_output(self, definition: SiteDefinition, response, record: dict):
        url = response.meta.get("listing_url") or response.url
        if record.get("full_name"):
            self.counts[definition.id]["listings"] += 1
            listing = self.listing(record, definition, url)
            methods = response.meta.get("playwright_page_methods") or ()
            png = next((m.result for m in methods if m.method == "screenshot"), None)
            if isinstance(png, bytes) and png:  # dropped by the pipeline unless the listing is accepted
                listing.screenshot = png
            yield listing
        else:
            self.error(definition.id, "parse_error", response.request)
        self.counts[definition.id]["details"] += 1
        self.progress(definition.id, "detail")

    # ---- errors and progress ----------------------------------------------------------------------

    def errback(self, failure):
        request = failure.request
        site = request.meta.get("site") or getattr(self, "site_id", self.name)
        kind = classify_failure(failure)
        if (
            request.meta.get("block")
            or kind in ("captcha", "interstitial", "rate_limited")
            or (kind == "blocked" and "block" in str(failure.value))
        ):
            # retries ran out on a block page: the page is lost (block_detected only said it was met)
            self.crawler.stats.inc_value(f"broker/{site}/blocked_pages")
        self.error(site, kind, request)

    def error(self, site: str, kind: str, request) -> None:
        self.counts[site][f"error_{kind}"] += 1
        self.crawler.stats.inc_value(f"broker/{site}/errors/{kind}")
        # no URL: search and profile URLs carry names
        logger.warning("%s: %s at stage %s", site, kind, request.meta.get("stage"))
        self.crawler.signals.send_catch_log(
            project_signals.scan_error, scan_id=self.scan.scan_id, site=site, kind=kind, request=request
        )

    def progress(self, site: str, stage: str) -> None:
        self.crawler.signals.send_catch_log(
            project_signals.scan_progress,
            scan_id=self.scan.scan_id,
            site=site,
            stage=stage,
            counts=dict(self.counts[site]),
        )

    def closed(self, reason):
        for site, counts in self.counts.items():
            logger.info("%s: %s", site, ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
