"""Evidence: a full-page screenshot of every accepted listing, stored encrypted and
content-addressed (crawler.security.evidence) with its ``screenshots`` row; the
item keeps only the sha256 that its findings reference.

A listing that already carries a PNG (a browser-rendered site's detail page is
captured while it is open, spiders/broker.py) is stored as it is. Otherwise the listing URL is requested again
through the engine, rendered by scrapy-playwright in the system Chromium with a
``screenshot(full_page=True)`` page method. The request goes through the
scheduler and every downloader middleware, so it obeys the site's rate limit,
deferrals and block detection like any page of the crawl (``engine.download_async``
would hand a deferred copy straight back to the downloader instead of waiting).

Only a listing the match pipeline (which runs before this one) accepted, its
``accepted`` flag set, gets a screenshot; any other loses any PNG it carried.

A screenshot that fails (a block, a timeout, the browser) never loses the
finding: it is stored without a screenshot, counted in ``screenshots/failed``
and reported on the scan as the error kind ``screenshot_failed``. After a SIGTERM
the scheduler hands out nothing new, so pending screenshots are given up at once
(reason ``shutdown``) and the findings are written without them.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import scrapy
from scrapy_playwright.page import PageMethod

from crawler.config import flag
from crawler.db.writer import BulkWriter
from crawler.items import PersonListing, Screenshot
from crawler.security import keyring_from_settings
from crawler.security.evidence import SCREENSHOT_COLUMNS, ScreenshotStore, screenshots_dir
from crawler.signals import scan_error, shutdown_requested

logger = logging.getLogger(__name__)

PRIORITY = 100  # ahead of the crawl's own pages: an item waits in the pipeline for it
# Screenshots are taken one at a time per crawl, on one page kept open between them: reusing the page
# halves Chromium's CPU per screenshot (0.41 -> 0.21 s measured, a new page costs a renderer start)
# and its wall time (1.1 -> 0.35 s on a loaded 2-core machine), so one after another on one page is
# as quick as side by side on new pages. An idle page counts against PLAYWRIGHT_MAX_PAGES_PER_CONTEXT.
IDLE_PAGES = 1


def screenshot_meta(site: str, render: str = "browser") -> dict:
    # browser-rendered sites fill the page from their API after load; a server-rendered page is
    # complete at "load", which the navigation already waited for (networkidle costs 0.5 s more)
    wait = [PageMethod("wait_for_load_state", "networkidle")] if render != "http" else []
    return {
        "playwright": True,
        "playwright_page_methods": [*wait, PageMethod("screenshot", full_page=True, type="png")],
        "site": site,
        "screenshot": True,
    }


class ShutdownInProgress(Exception):
    """The crawl is draining after a SIGTERM: the screenshot request will not be scheduled."""


class ScreenshotPipeline:
    def __init__(self, crawler, store: ScreenshotStore, writer: BulkWriter):
        self.crawler = crawler
        self.store = store
        self.writer = writer
        self.stats = crawler.stats
        settings = crawler.settings
        self.enabled = flag(settings, "SCREENSHOTS_ENABLED") if settings.get("SCREENSHOTS_ENABLED") else True
        self.timeout = settings.getfloat("SCREENSHOTS_TIMEOUT")
        self.waiting: dict[int, asyncio.Future] = {}
        self.ids = itertools.count()
        self.stopping = False
        self.idle_pages: list = []  # playwright Pages of finished screenshots, ready for the next one
        self.slots: asyncio.Semaphore | None = None

    @classmethod
    def from_crawler(cls, crawler):
        store = ScreenshotStore(screenshots_dir(crawler.settings), keyring_from_settings(crawler.settings))
        pipeline = cls(crawler, store, BulkWriter.for_crawler(crawler))
        crawler.signals.connect(pipeline.shutdown, signal=shutdown_requested)
        return pipeline

    def shutdown(self, **_):
        self.stopping = True
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ShutdownInProgress())

    async def open_spider(self):
        await self.writer.open()

    async def close_spider(self):
        for future in self.waiting.values():
            future.cancel()
        pages, self.idle_pages = self.idle_pages, []
        for page in pages:
            await self.close_page(page)
        await self.writer.close()

    async def close_page(self, page) -> None:
        try:
            if not page.is_closed():
                await page.close()
        except Exception as exc:  # the browser may be gone already: nothing left to close
            logger.debug("screenshot page not closed (%s)", type(exc).__name__)

    def page_meta(self) -> dict:
        """Keep the page after the request (``playwright_include_page``) and reuse an idle one."""
        meta = {"playwright_include_page": True}
        while self.idle_pages:
            page = self.idle_pages.pop()
            if not page.is_closed():  # its context may have been closed meanwhile
                meta["playwright_page"] = page
                break
        return meta

    def release(self, page) -> None:
        """A page whose screenshot is taken: kept for the next one, or closed."""
        if page is None or page.is_closed():
            return
        if len(self.idle_pages) < IDLE_PAGES and not self.stopping:
            self.idle_pages.append(page)
        else:
            asyncio.get_running_loop().create_task(self.close_page(page))

    async def process_item(self, item):
        if isinstance(item, Screenshot):
            if item.png:
                await self.save(item.png)
            return item
        if not isinstance(item, PersonListing):
            return item
        if not item.accepted:
            item.screenshot = None  # no evidence kept about people who are not the target
            return item
        png = item.screenshot
        if png is None and self.enabled and not self.stopping and item.screenshot_sha256 is None:
            png = await self.capture(item)
        if png:
            item.screenshot, item.screenshot_sha256 = None, await self.save(png)
        return item

    async def save(self, png: bytes) -> str:
        stored = await asyncio.to_thread(self.store.save, png)
        await self.writer.add("screenshots", SCREENSHOT_COLUMNS, [stored.row()])
        self.stats.inc_value("screenshots/stored")
        return stored.sha256

    async def capture(self, item: PersonListing) -> bytes | None:
        """The listing page as a full-page PNG, or None (recorded) when it cannot be taken."""
        key = next(self.ids)
        future = self.waiting[key] = asyncio.get_running_loop().create_future()
        request = scrapy.Request(
            item.listing_url,
            callback=self.captured,
            errback=self.failed,
            cb_kwargs={"key": key},
            meta=self.site_meta(item.site) | screenshot_meta(item.site, self.render_mode(item.site)),
            priority=PRIORITY,
            dont_filter=True,
        )
        request.meta["screenshot_key"] = key
        reason = None
        try:
            png = await asyncio.wait_for(self.take(request, future), self.timeout)
        except TimeoutError:
            reason = "timeout"
        except ShutdownInProgress:
            reason = "shutdown"
        except Exception as exc:  # a block given up on, an HTTP error, the browser: the finding stays
            reason = type(exc).__name__
        finally:
            self.waiting.pop(key, None)
        if reason is None and png:
            self.stats.inc_value("screenshots/captured")
            return png
        reason = reason or "empty"
        self.stats.inc_value("screenshots/failed")
        self.stats.inc_value(f"screenshots/failed/{reason}")
        logger.warning("scan %s %s: screenshot failed (%s); finding kept without it", item.scan_id, item.site, reason)
        await self.crawler.signals.send_catch_log_async(
            scan_error, scan_id=item.scan_id, site=item.site, kind="screenshot_failed", request=request
        )
        return None

    async def take(self, request: scrapy.Request, future: asyncio.Future) -> bytes | None:
        """One screenshot at a time per crawl, on the page the last one used (see IDLE_PAGES)."""
        if self.slots is None:
            self.slots = asyncio.Semaphore(IDLE_PAGES)
        async with self.slots:
            if future.done():  # given up (shutdown) while it waited
                return future.result()
            request.meta.update(self.page_meta())
            self.crawler.engine.crawl(request)
            return await future

    def site_meta(self, site: str) -> dict:
        """The broker spider's own meta for this site (its rate key and rate, block signatures,
        download slot, retries), so the screenshot counts against the site's politeness."""
        spider = self.crawler.spider
        site_meta, definition = getattr(spider, "site_meta", None), getattr(spider, "sites", {}).get(site)
        return dict(site_meta(definition)) if callable(site_meta) and definition is not None else {}

    def render_mode(self, site: str) -> str:
        definition = getattr(self.crawler.spider, "sites", {}).get(site)
        return getattr(definition, "render", None) or "browser"

    def captured(self, response, key):
        self.release(response.meta.get("playwright_page"))
        future = self.waiting.get(key)
        if future is not None and not future.done():
            methods = response.meta.get("playwright_page_methods") or []
            png = next((m.result for m in methods if m.method == "screenshot"), None)
            future.set_result(png if isinstance(png, bytes) else None)
        return []

    def failed(self, failure):
        page = failure.request.meta.get("playwright_page")
        if page is not None and not page.is_closed():  # in an unknown state: not reused
            asyncio.get_running_loop().create_task(self.close_page(page))
        future = self.waiting.get(failure.request.meta.get("screenshot_key"))
        if future is not None and not future.done():
            future.set_exception(failure.value)
        return []
