"""A spider for the scan-event tests, loaded with ``-s SPIDER_MODULES=tests.scans.probe_spider``.

It keeps the broker spiders' contract (``meta["site"]``, an errback that sends
``scan_error`` with ``classify_failure``, ``scan_progress`` after each page) over an
explicit list of pages, so a test chooses which site meets which failure:

    scrapy crawl scan_probe -a first_name=.. -a last_name=.. -a scan_id=..
        -a pages="site|url site|url ..."            detail pages (sandbox directory format)
        [-a listing_urls="site|page|listing_url"]   a page whose listing claims another URL
"""

from __future__ import annotations

from urllib.parse import urlsplit

import scrapy

from crawler.items import PersonListing
from crawler.observability.logs import register_pii
from crawler.scans import ScanContext, Website, classify_failure
from crawler.signals import scan_error, scan_progress
from crawler.spider_args import parse_person, parse_scan_id


class ScanProbeSpider(scrapy.Spider):
    name = "scan_probe"
    ratelimit_rps = 20

    @classmethod
    def check_arguments(cls, kwargs: dict) -> dict:
        return {"query": parse_person(kwargs), "scan_id": parse_scan_id(kwargs)}

    def __init__(self, *args, pages: str = "", listing_urls: str = "", rps: str = "", **kwargs):
        parsed = self.check_arguments(kwargs)
        for key in ("first_name", "last_name", "middle_name", "city", "state", "age", "email", "phone"):
            kwargs.pop(key, None)
        super().__init__(*args, **kwargs)
        register_pii(*parsed["query"].pii_values())
        if rps:
            self.ratelimit_rps = float(rps)
        self.pages = [tuple(p.split("|", 2)) for p in pages.split()] + [
            tuple(p.split("|", 2)) for p in listing_urls.split()
        ]
        sites: dict[str, str] = {}
        for site, url, *_ in self.pages:
            parts = urlsplit(url)
            sites.setdefault(site, f"{parts.scheme}://{parts.netloc}")
        self.scan = ScanContext(parsed["scan_id"], parsed["query"], [Website(s, s, u) for s, u in sites.items()])

    async def start(self):
        for site, url, *claimed in self.pages:
            yield scrapy.Request(
                url,
                callback=self.parse_person,
                errback=self.failed,
                dont_filter=True,
                meta={"site": site},
                cb_kwargs={"listing_url": claimed[0] if claimed else None},
            )

    def progress(self, site: str, **counts):
        self.crawler.signals.send_catch_log(
            scan_progress, scan_id=self.scan.scan_id, site=site, stage="detail", counts=counts
        )

    def parse_person(self, response, listing_url=None):
        site = response.meta["site"]
        name = response.css("h1.name::text").get(default="").strip()
        if not name:
            self.crawler.signals.send_catch_log(
                scan_error, scan_id=self.scan.scan_id, site=site, kind="parse_error", request=response.request
            )
            return
        age = "".join(ch for ch in response.css(".age::text").get(default="") if ch.isdigit())
        addresses = [a.strip() for a in response.css("ul.addresses li::text").getall()]
        self.progress(site, candidates=1)
        yield PersonListing(
            site=site,
            scan_id=self.scan.scan_id,
            listing_url=listing_url or response.url,
            full_name=name,
            age=int(age) if age else None,
            locations=[a.split(",", 1)[1].strip() for a in addresses if "," in a],
            phones=[p.strip() for p in response.css("ul.phones li::text").getall()],
            emails=[e.strip() for e in response.css("ul.emails li::text").getall()],
            addresses=addresses,
        )

    def failed(self, failure):
        site = failure.request.meta["site"]
        self.crawler.signals.send_catch_log(
            scan_error, scan_id=self.scan.scan_id, site=site, kind=classify_failure(failure), request=failure.request
        )
        self.progress(site, failed=1)
