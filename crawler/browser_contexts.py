"""Browser contexts that are replaced after a number of pages (``PLAYWRIGHT_CONTEXT_MAX_PAGES``).

Why: Playwright keeps every request and response of a context (in the Node driver
and in this process) until the context closes, and Chromium keeps the context's
in-memory HTTP cache, so a crawl that renders every page in one long-lived
context grows without bound (scrapy-playwright issue 240: 4 GB to 18 GB over 700
pages; Playwright issue 6319). A context is retired once it has opened N pages:
new pages go to a fresh context of the same name, which starts with the retired
one's cookies and localStorage (``PLAYWRIGHT_CONTEXT_KEEP_STORAGE``: an accepted
terms modal, a session), and the retired context is closed as soon as its last
page is, or, when the spider keeps pages of it (``playwright_include_page`` in the
default context: the screenshot pipeline's reused page), as soon as no download
runs on its pages: a kept page then reads as closed. Named contexts that handed a
page to the spider (the removal flows' sessions) and persistent contexts are never
recycled.

This replaces scrapy-playwright's ``_create_browser_context`` and ``_create_page``
(0.0.48): their close callbacks find the context by name, which would release the
successor's page slots when a retired context's page closed.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from contextlib import suppress
from dataclasses import dataclass, field

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page
from scrapy_playwright._utils import _make_request_logger, _make_response_logger
from scrapy_playwright.handler import DEFAULT_CONTEXT_NAME, PERSISTENT_CONTEXT_PATH_KEY, BrowserContextWrapper
from scrapy_playwright.handler import logger as playwright_logger

from crawler.setting import flag

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class ContextSlot(BrowserContextWrapper):
    """One browser context and its page counts (``pages_open`` includes pages being created)."""

    name: str = DEFAULT_CONTEXT_NAME
    kwargs: dict = field(default_factory=dict)
    rendered: int = 0
    pages_open: int = 0
    pinned: bool = False  # a page of a named context went to the spider (a removal flow's session)
    retired: bool = False
    in_flight: int = 0  # downloads running on its pages
    closing: bool = False

    __hash__ = object.__hash__  # by identity: a set member while it retires


class RecyclingContexts:
    """Mixin for ScrapyPlaywrightDownloadHandler (set up by ``_init_recycling``)."""

    def _init_recycling(self, settings) -> None:
        self.recycle_after = settings.getint("PLAYWRIGHT_CONTEXT_MAX_PAGES")
        self.keep_storage = flag(settings, "PLAYWRIGHT_CONTEXT_KEEP_STORAGE")
        self.retiring: set[ContextSlot] = set()
        self.page_slots: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # page -> its context's slot
        self.background: set[asyncio.Task] = set()

    # ---- contexts -------------------------------------------------------------------------------

    async def _create_browser_context(self, name, context_kwargs, spider=None) -> ContextSlot:
        acquired = False
        if hasattr(self, "context_semaphore"):
            await self.context_semaphore.acquire()
            acquired = True
        kwargs = dict(context_kwargs or {})
        try:
            persistent = bool(kwargs.get(PERSISTENT_CONTEXT_PATH_KEY))
            remote = bool(self.config.cdp_url or self.config.connect_url)
            if persistent:
                context = await self.browser_provider.launch_persistent_context(kwargs)
            else:
                await self._maybe_launch_browser()
                context = await self.browser.new_context(**kwargs)
        except Exception:
            if acquired:
                self.context_semaphore.release()
            raise
        slot = ContextSlot(
            context=context,
            semaphore=asyncio.Semaphore(self.config.max_pages_per_context),
            persistent=persistent,
            name=name,
            kwargs=kwargs,
        )
        context.on("close", lambda *_: self._context_closed(slot))
        self.stats.inc_value("playwright/context_count")
        self.stats.inc_value(f"playwright/context_count/persistent/{persistent}")
        self.stats.inc_value(f"playwright/context_count/remote/{remote}")
        logger.debug("Browser context started: %r (persistent=%s)", name, persistent)
        if self.config.navigation_timeout_ms is not None:
            context.set_default_navigation_timeout(self.config.navigation_timeout_ms)
        self.context_wrappers[name] = slot
        self._set_stats_max_concurrent_context_count()
        return slot

    def _context_closed(self, slot: ContextSlot) -> None:
        if self.context_wrappers.get(slot.name) is slot:
            del self.context_wrappers[slot.name]
        self.retiring.discard(slot)
        if hasattr(self, "context_semaphore"):
            self.context_semaphore.release()
        logger.debug("Browser context closed: %r", slot.name)

    def _due(self, slot: ContextSlot) -> bool:
        return (
            self.recycle_after > 0 and slot.rendered >= self.recycle_after and not slot.pinned and not slot.persistent
        )

    async def _recycle(self, slot: ContextSlot, spider) -> ContextSlot:
        """Retire ``slot`` (closed once its pages are) and start its successor."""
        slot.retired = True
        if self.context_wrappers.get(slot.name) is slot:
            del self.context_wrappers[slot.name]
        self.retiring.add(slot)
        kwargs = dict(slot.kwargs)
        if self.keep_storage:
            with suppress(PlaywrightError):
                kwargs["storage_state"] = await slot.context.storage_state()
        self.stats.inc_value("playwright/context_count/recycled")
        self._maybe_close(slot)
        successor = await self._create_browser_context(slot.name, kwargs, spider)
        successor.kwargs = slot.kwargs  # the next successor takes a fresh snapshot
        return successor

    def _maybe_close(self, slot: ContextSlot) -> None:
        """A retired context closes once its pages are closed, or (unpinned) once no download runs on them."""
        if slot.retired and (slot.pages_open == 0 or (slot.in_flight == 0 and not slot.pinned)):
            self._close_soon(slot)

    def download_started(self, slot: ContextSlot) -> None:
        """A download on a page the spider kept (counted like a new page)."""
        slot.in_flight += 1
        slot.rendered += 1

    def download_ended(self, slot: ContextSlot) -> None:
        slot.in_flight -= 1
        self._maybe_close(slot)

    def _close_soon(self, slot: ContextSlot) -> None:
        if slot.closing:
            return
        slot.closing = True
        task = asyncio.ensure_future(self._close_context(slot))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _close_context(self, slot: ContextSlot) -> None:
        with suppress(PlaywrightError):
            await slot.context.close()

    # ---- pages ----------------------------------------------------------------------------------

    async def _create_page(self, request, spider) -> Page:
        name = request.meta.setdefault("playwright_context", DEFAULT_CONTEXT_NAME)
        async with self.context_launch_lock:  # one context per name, even when many pages ask at once
            slot = self.context_wrappers.get(name)
            if slot is not None and self._due(slot):
                slot = await self._recycle(slot, spider)
            if slot is None:
                slot = await self._create_browser_context(name, request.meta.get("playwright_context_kwargs"), spider)
            slot.rendered += 1
            slot.pages_open += 1  # reserved: the context is not closed under this page
            slot.in_flight += 1  # ended by the handler when the request ends (track_page)
            if request.meta.get("playwright_include_page") and name != DEFAULT_CONTEXT_NAME:
                slot.pinned = True
        try:
            await slot.semaphore.acquire()
        except BaseException:
            self._page_gone(slot)
            self.download_ended(slot)
            raise
        try:
            page = await slot.context.new_page()
        except BaseException:
            slot.semaphore.release()
            self._page_gone(slot)
            self.download_ended(slot)
            raise
        self.stats.inc_value("playwright/page_count")
        self._set_stats_max_concurrent_page_count(self._get_total_page_count())
        if self.config.navigation_timeout_ms is not None:
            page.set_default_navigation_timeout(self.config.navigation_timeout_ms)
        closed = self._page_closed_callback(slot)
        page.on("close", closed)
        page.on("crash", closed)
        page.on("request", self._increment_request_stats)
        page.on("response", self._increment_response_stats)
        if playwright_logger.isEnabledFor(logging.DEBUG):
            page.on("request", _make_request_logger(name, spider))
            page.on("response", _make_response_logger(name, spider))
        self.page_slots[page] = slot
        self.track_page(request, page, slot)
        return page

    def _page_closed_callback(self, slot: ContextSlot):
        done = False

        def closed(*_) -> None:
            nonlocal done
            if done:  # "crash" then "close": release the slot once
                return
            done = True
            slot.semaphore.release()
            self._page_gone(slot)

        return closed

    def _page_gone(self, slot: ContextSlot) -> None:
        slot.pages_open -= 1
        self._maybe_close(slot)

    def _get_total_page_count(self) -> int:
        slots = [*self.context_wrappers.values(), *self.retiring]
        return sum(len(slot.context.pages) for slot in slots)

    def track_page(self, request, page: Page, slot: ContextSlot) -> None:
        """Hook for the handler: it calls ``download_ended(slot)`` when the request ends, and closes the
        page unless the spider keeps it."""

    async def _browser_disconnected_callback(self) -> None:
        self.retiring.clear()  # their pages and contexts went with the browser
        await super()._browser_disconnected_callback()

    async def _close_contexts(self) -> None:
        """Every context, the retiring ones too (at shutdown)."""
        slots = [*self.context_wrappers.values(), *self.retiring]
        with suppress(PlaywrightError):
            await asyncio.gather(*(slot.context.close() for slot in slots))
        self.context_wrappers.clear()
        self.retiring.clear()
        if self.background:
            await asyncio.gather(*self.background, return_exceptions=True)
