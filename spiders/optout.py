"""The ``optout`` spider: carries removal requests through their sites' opt-out flows.

    scrapy crawl optout                  # every request whose next action is due
    scrapy crawl optout -a request=ID    # that request now (whatever its next_action_at)

Each request runs in its own cookiejar (and, for browser flows, its own browser context) from the
step it is at (crawler/removal/runner.py); requests of different sites run side by side, each site at
its own pace and download slot, at most the site's ``politeness.concurrency`` flows at once. A
request with no steps left is verified by re-scanning its listing (crawler/removal/verify.py).

Everything personal (the listing URL, the person) is decrypted in memory only, registered with the
log redactor, and never logged: log lines name request ids, sites and steps. Stats: ``optout/<what>``
and ``optout/<site>/<what>`` (submitted, confirmed, needs_human, removed, still_listed, failed...).

Requests go straight through the engine (``download_async``), never through the scheduler: the
crawl uses Scrapy's plain scheduler, so a middleware's long wait (a rate-limit pause) is waited out
in place rather than handed to a scheduler these requests never pass through.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import defaultdict

import scrapy

from crawler.extraction import parse_base_urls
from crawler.observability.logs import register_pii
from crawler.removal.runner import FlowRunner, Services
from crawler.spider_args import SpiderArgumentError
from crawler.store import removal_flow, removals
from spiders.sites import SPIDERS

logger = logging.getLogger(__name__)

DUE_BATCH = 500  # requests looked at in one crawl


def parse_request_id(kwargs: dict) -> int | None:
    raw = str(kwargs.get("request") or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise SpiderArgumentError("request", f"expected a removal request id (a whole number), got {raw!r}")
    return int(raw)


class OptoutSpider(scrapy.Spider):
    name = "optout"
    # its sends and submissions are recorded in its own tables; replaying one outside them could repeat it
    replayable = False

    @classmethod
    def check_arguments(cls, kwargs: dict) -> dict:
        parse_request_id(kwargs)
        return kwargs

    @classmethod
    def definitions(cls, settings) -> dict:
        """Every site definition (disabled ones too: a request made before stays served), with
        SITES_BASE_URLS applied."""
        overrides = parse_base_urls(settings.get("SITES_BASE_URLS"))
        found = {}
        for site_id, spidercls in SPIDERS.items():
            definition = spidercls.definition
            if site_id in overrides:
                definition = definition.with_base_url(overrides[site_id])
            found[site_id] = definition
        return found

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        # one download slot per site, as the broker spiders have
        slots = dict(settings.getdict("DOWNLOAD_SLOTS"))
        for site_id, definition in cls.definitions(settings).items():
            slots.setdefault(site_id, {"concurrency": definition.concurrency, "delay": 0})
        settings.set("DOWNLOAD_SLOTS", slots, priority="spider")
        # see the module docstring: nothing here passes through a scheduler
        settings.set("SCHEDULER", "scrapy.core.scheduler.Scheduler", priority="spider")
        from crawler.removal.mail import mail_spider_settings

        for name, value in mail_spider_settings(settings).items():
            settings.set(name, value, priority="spider")

    def __init__(self, request: str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.request_id = parse_request_id({"request": request})
        self.spider_arguments = {"request": request} if request else {}

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.sites = cls.definitions(crawler.settings)
        spider.site_slots = defaultdict(lambda: None)
        return spider

    def services(self) -> Services:
        from crawler.removal.inbox import inbox_from_settings
        from crawler.removal.mail import provider_from_crawler

        settings = self.crawler.settings
        return Services(
            settings, self.crawler.stats, provider_from_crawler(self.crawler), inbox_from_settings(settings)
        )

    async def start(self):
        settings = self.crawler.settings
        if self.request_id is not None:
            ids = [self.request_id]
        else:
            ids = await removals.due_requests(settings, DUE_BATCH)
        logger.info("optout: %d removal request(s) to look at", len(ids))
        self.crawler.stats.set_value("optout/requests", len(ids))
        if ids:
            services = self.services()
            await asyncio.gather(*(self.process(request_id, services) for request_id in ids))
        return
        yield  # an async generator that yields nothing: every request goes through download_async

    def slot(self, site: str, definition) -> asyncio.Semaphore:
        if self.site_slots[site] is None:
            self.site_slots[site] = asyncio.Semaphore(definition.concurrency)
        return self.site_slots[site]

    async def process(self, request_id: int, services: Services) -> None:
        """One request: its flow from where it is. An unexpected error is logged (its type and place,
        not its text, which may carry a value), counted, and recorded as a failed step (backoff, then
        'failed' with that reason after REMOVAL_STEP_FAILURES)."""
        try:
            loaded = await removals.get_request(services.settings, request_id)
            if loaded is None:
                logger.warning("optout: no removal request %d", request_id)
                return
            definition = self.sites.get(loaded.website_id)
            if definition is None:
                await removal_flow.fail(services.settings, request_id, f"no site definition {loaded.website_id!r}")
                return
            async with self.slot(loaded.website_id, definition):
                request = await removals.load_request(services.settings, request_id)
                if request.status not in removals.ACTIVE:
                    logger.info("optout: removal %d is %s: nothing to do", request_id, request.status)
                    return
                register_pii(request.listing_url, *(request.person.pii_values() if request.person else ()))
                await FlowRunner(self.crawler, request, definition, services).run()
        except Exception as exc:
            self.crawler.stats.inc_value("optout/errors")
            # where, not what: an error's text may carry a value
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{frame.filename.rpartition('/')[2]}:{frame.lineno}"
            logger.error("optout: removal %d stopped by %s at %s", request_id, type(exc).__name__, where)
            # a failed step like any other: backoff, then 'failed' with the reason (never due forever)
            try:
                settings = services.settings
                await removal_flow.step_failed(
                    settings,
                    request_id,
                    f"error {type(exc).__name__} at {where}",
                    settings.getfloat("REMOVAL_RETRY_MAX_HOURS"),
                    settings.getfloat("REMOVAL_RETRY_BASE_HOURS"),
                )
            except Exception as again:  # the database itself is down: the request stays due, retried next run
                logger.error("optout: removal %d: its failure not recorded (%s)", request_id, type(again).__name__)
