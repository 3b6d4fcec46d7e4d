"""The broker spider's side of self-healing extraction (crawler/healing/healer.py does the work).

Pages are read through the healer, which holds the ones that broke. After every page the spider asks it
to ``settle``: when a heal is made, the held pages are read again at once with the healed definition
(no second fetch) and their listings and requests are yielded from that callback. When the crawl goes
idle with pages still held, the healer heals with what there is and the held pages are read again from
the callback of a local ``data:`` request (nothing is fetched twice); a page no heal could read ends as
``parse_error``, as before healing.
Listings carry the definition version they were read with; under a quarantined version they are held
(``PersonListing.held``: stored in ``held_findings`` until a person accepts the version).
"""

from __future__ import annotations

import asyncio
import functools
import logging

import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider

from crawler.extraction import SiteDefinition, extract_detail, extract_list, listing_from_record
from crawler.healing.healer import Healer, Settled

logger = logging.getLogger(__name__)


class HealingMixin:
    healer: Healer | None = None
    _final_heal: asyncio.Future | None = None

    def connect_healer(self, crawler) -> None:
        if not crawler.settings.getbool("HEAL_ENABLED", True):
            return
        self.healer = Healer.from_crawler(crawler)
        crawler.signals.connect(self._heal_when_idle, signal=signals.spider_idle)
        crawler.signals.connect(self._close_healer, signal=signals.spider_closed)

    async def open_healer(self) -> None:
        if self.healer is None:
            return
        try:
            self.sites = await self.healer.open(self.sites)
        except Exception:  # no memory or versions (the database is down): crawl with the YAMLs, as before
            logger.exception("healing: off for this crawl (could not read the selector memory and versions)")
            self.healer = None

    async def _close_healer(self, spider, reason) -> None:
        if self.healer is None:
            return
        try:
            await self.healer.close(self.scan.scan_id)
        except Exception:  # the memory is an aid: a crawl that cannot store it still stored its findings
            logger.exception("healing: could not store the selector memory")

    # ---- reading ---------------------------------------------------------------------------------

    def read_list(self, definition: SiteDefinition, response):
        if self.healer is None:
            return extract_list(definition, response, self.values)
        return self.healer.read_list(definition, response, self.values)

    def read_detail(self, definition: SiteDefinition, response):
        if self.healer is None:
            return extract_detail(definition, response)
        return self.healer.read_detail(definition, response)

    def listing(self, record: dict, definition: SiteDefinition, url: str):
        listing = listing_from_record(record, definition.id, self.scan.scan_id, url)
        version = self.healer.version_of(definition.id) if self.healer else None
        if version is not None:
            listing.definition_sha256 = version.sha256
            listing.held = version.quarantined
        return listing

    # ---- healing ---------------------------------------------------------------------------------

    async def settle(self, site: str, kind: str):
        """Outputs of the pages the healer hands back (read again with the current definition)."""
        if self.healer is None:
            return
        settled = await self.healer.settle(site, kind)
        for output in self._settled_outputs(site, kind, settled):
            yield output

    def _settled_outputs(self, site: str, kind: str, settled):
        if settled.definition is not None:
            self.sites[site] = settled.definition
        for response in settled.given_up:
            self.error(site, "parse_error", response.request)
            self.counts[site]["details" if kind == "detail" else "pages"] += 1
        definition = self.sites[site]
        for response in settled.reread:
            try:
                if kind == "detail":
                    outputs = list(self.detail_output(definition, response, settled.record(definition, response)))
                else:
                    page = extract_list(definition, response, self.values)
                    outputs = list(self.results_output(definition, response, page))
            except Exception:  # one page that cannot be read again does not take the others with it
                logger.exception("healing: %s could not read a held %s page again", site, kind)
                self.error(site, "parse_error", response.request)
                continue
            yield from outputs

    def _heal_when_idle(self, spider) -> None:
        if self.healer is None:
            return
        if self._final_heal is not None and not self._final_heal.done():
            raise DontCloseSpider
        pending = [
            (site, kind)
            for site, state in self.healer.sites.items()
            for kind in ("list", "detail")
            if state.held[kind] or state.suspects[kind]
        ]
        if not pending:
            return
        self._final_heal = asyncio.ensure_future(self._final_settle(pending))
        raise DontCloseSpider

    async def _final_settle(self, pending: list) -> None:
        """The crawl is idle with pages held: heal with what there is, and read the held pages again
        from a local ``data:`` request's callback (an idle handler cannot yield; nothing is fetched twice)."""
        for site, kind in pending:
            try:
                settled = await self.healer.settle(site, kind, final=True)
            except Exception:  # never an idle loop: what is held goes back as it reads
                logger.exception("healing: the final %s heal of %s failed", kind, site)
                state = self.healer.sites[site]
                settled = Settled(reread=[*state.held[kind], *(r for r, _ in state.suspects[kind])])
                state.held[kind].clear()
                state.suspects[kind].clear()
            if settled.definition is not None:
                self.sites[site] = settled.definition
            for response in settled.given_up:
                self.error(site, "parse_error", response.request)
                self.counts[site]["details" if kind == "detail" else "pages"] += 1
            settled.given_up = []
            if settled.reread:
                # the callback is not a spider method: the shared scheduler keeps the request in this
                # worker (the held responses are here); no site, so no rate, circuit or block accounting
                self.crawler.engine.crawl(
                    scrapy.Request(
                        "data:text/plain,reread",
                        callback=functools.partial(self._read_again, site, kind, settled),
                        dont_filter=True,
                        meta={
                            "dont_retry": True,
                            "dont_ratelimit": True,
                            "dont_circuit": True,
                            "dont_detect_blocks": True,
                        },
                    )
                )

    def _read_again(self, site: str, kind: str, settled, response):
        pages, settled.reread = settled.reread, []  # once
        yield from self._settled_outputs(site, kind, Settled(reread=pages, merge_with=settled.merge_with))
