"""The example spider: one person against the sandbox's people directory.

    scrapy crawl example -a first_name=Jane -a last_name=Doe [-a state=IL -a city=...
                         -a age=42 -a scan_id=UUID -a base_url=http://127.0.0.1:8100]
    scrapy crawl example -a scan_id=UUID [-a base_url=...]   # a scan made with python -m crawler.store create-scan

It searches, follows result pages, keeps the results whose name (and, when
given, state, city and age) fit the target, and yields one PersonListing per
detail page; the pipelines encrypt it into ``findings`` rows. It is the
smallest end-to-end path through the framework (the broker spiders of the
site definitions follow the same flow).
"""

from __future__ import annotations

from urllib.parse import urlencode

import scrapy

from crawler.items import PersonListing
from crawler.matching.names import fold, parse_name
from crawler.observability.logs import register_pii
from crawler.scans import ScanContext, Website
from crawler.spider_args import (
    PERSONAL_ARGUMENTS,
    PersonQuery,
    parse_http_url,
    parse_person,
    parse_scan_id,
    refuse_job_arguments,
    wants_stored_scan,
)
from crawler.store.scans import load_stored_scan

SITE_ID = "directory"


def result_fits(query: PersonQuery, name: str, age_text: str, location: str, age_tolerance: int) -> bool:
    """Does a search result's summary fit the target? (First and last name must; the age within
    ``age_tolerance`` years, MATCH_AGE_TOLERANCE.)"""
    seen = parse_name(name)
    if not seen.valid or seen.first != fold(query.first_name) or seen.last != fold(query.last_name):
        return False
    city, _, state = (part.strip() for part in location.rpartition(","))
    if query.state and state.upper() != query.state:
        return False
    if query.city and city.casefold() != query.city.casefold():
        return False
    digits = "".join(ch for ch in age_text if ch.isdigit())
    return not (query.age and digits and abs(int(digits) - query.age) > age_tolerance)


class ExampleSpider(scrapy.Spider):
    name = "example"
    # the directory's own search already narrows to the person; its listings are not candidates to match
    match_listings = False
    takes_person = True  # python -m crawler.store create-scan --spider accepts it
    site_id = SITE_ID
    # the sandbox directory runs on this machine; broker sites keep RATELIMIT_DEFAULT_RPS
    ratelimit_rps = 20

    @classmethod
    def check_arguments(cls, kwargs: dict, settings=None) -> dict:
        refuse_job_arguments(kwargs)
        if wants_stored_scan(kwargs):
            query = load_stored_scan(kwargs, settings, cls.name).query
        else:
            query = parse_person(kwargs, settings)
        return {
            "query": query,
            "scan_id": parse_scan_id(kwargs),
            "base_url": parse_http_url(kwargs, "base_url", kwargs.get("_default_base_url")),
        }

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        kwargs.setdefault("_default_base_url", crawler.settings.get("EXAMPLE_BASE_URL"))
        kwargs["_settings"] = crawler.settings
        return super().from_crawler(crawler, *args, **kwargs)

    def __init__(self, *args, **kwargs):
        parsed = self.check_arguments(kwargs, kwargs.pop("_settings", None))
        # kept for replaying dead letters (stored only inside their encrypted payload)
        self.spider_arguments = {k: v for k, v in kwargs.items() if not k.startswith("_") and isinstance(v, str)}
        for key in ("_default_base_url", *PERSONAL_ARGUMENTS):
            kwargs.pop(key, None)  # personal values stay in self.scan, not as loose attributes
        super().__init__(*args, **kwargs)
        query: PersonQuery = parsed["query"]
        register_pii(*query.pii_values())
        self.base_url = parsed["base_url"]
        self.scan = ScanContext(
            scan_id=parsed["scan_id"],
            query=query,
            websites=[Website(SITE_ID, "Sandbox people directory", self.base_url)],
        )

    async def start(self):
        query = self.scan.query
        params = {"first": query.first_name, "last": query.last_name}
        if query.state:
            params["state"] = query.state
        yield scrapy.Request(f"{self.base_url}/search?{urlencode(params)}", callback=self.parse_results)

    def parse_results(self, response):
        for result in response.css("div.result"):
            name = result.css("a.name::text").get(default="")
            if result_fits(
                self.scan.query,
                name,
                result.css("span.age::text").get(default=""),
                result.css("span.location::text").get(default=""),
                self.settings.getint("MATCH_AGE_TOLERANCE"),
            ):
                yield response.follow(result.css("a.name::attr(href)").get(), callback=self.parse_person)
        if next_page := response.css("a.next::attr(href)").get():
            yield response.follow(next_page, callback=self.parse_results)

    def parse_person(self, response):
        age = "".join(ch for ch in response.css(".age::text").get(default="") if ch.isdigit())
        addresses = [a.strip() for a in response.css("ul.addresses li::text").getall()]
        yield PersonListing(
            site=SITE_ID,
            scan_id=self.scan.scan_id,
            listing_url=response.url,
            full_name=response.css("h1.name::text").get(default="").strip(),
            age=int(age) if age else None,
            locations=[a.split(",", 1)[1].strip() for a in addresses if "," in a],
            phones=[p.strip() for p in response.css("ul.phones li::text").getall()],
            emails=[e.strip() for e in response.css("ul.emails li::text").getall()],
            addresses=addresses,
            relatives=[r.strip() for r in response.css("ul.relatives li a::text").getall()],
        )
