"""scrapy-playwright's download handler, started on first use, with flat memory and no stray Chromium.

- **Lazy.** The stock handler starts Playwright (a Node driver process) when the
  engine starts, so every crawl pays for it, also those that never render a page
  (events ingestion, ``fetch``). This one starts it with the first request marked
  ``meta["playwright"]``; other requests go through Scrapy's own HTTP handler.
- **One browser per crawl.** Scrapy builds one handler per scheme: ``http`` and
  ``https`` would each start a driver and a Chromium. ``from_crawler`` hands the
  same handler to both.
- **Recycled contexts** (crawler/browser_contexts.py, ``PLAYWRIGHT_CONTEXT_MAX_PAGES``).
- **Pages always closed.** scrapy-playwright closes a page on a failed request,
  but not when the download is cancelled (the engine stopping, a timeout around
  it) or fails before its ``try`` (a route, an init callback): every page opened
  for a request without ``playwright_include_page`` is closed when the request ends.
- **Heavy resources aborted** (``PLAYWRIGHT_ABORT_RESOURCE_TYPES``: images, media,
  fonts), except for requests that take a screenshot (evidence must look right)
  and requests with ``meta["playwright_abort_resources"] = False``.
- **The worker's Chromium** (``PLAYWRIGHT_SHARED_BROWSER_URL``, set by the worker: crawler/worker/
  shared_browser.py): connected to with Playwright's protocol; the crawl sees and closes only its
  own contexts, and disconnects without closing the shared browser.
- **No Chromium outlives the crawl** (``PLAYWRIGHT_PROCESS_GUARD``): Chromium is
  started through crawler/chromium_launcher.py, which kills it when the crawl or
  the driver dies, even by SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import os
import pkgutil
import sys
import tempfile
import weakref
from contextlib import suppress
from pathlib import Path

from scrapy import signals
from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler
from scrapy_playwright.page import PageMethod

from crawler.browser_contexts import RecyclingContexts
from crawler.setting import flag

logger = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("chromium_launcher.py")
_HANDLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # crawler -> its one handler
_REQUEST: contextvars.ContextVar = contextvars.ContextVar("playwright_request", default=None)


def takes_screenshot(meta: dict) -> bool:
    methods = meta.get("playwright_page_methods") or ()
    if isinstance(methods, dict):
        methods = methods.values()
    return bool(meta.get("screenshot")) or any(
        isinstance(method, PageMethod) and method.method == "screenshot" for method in methods
    )


def launcher_path() -> str | None:
    """The launcher as an executable script run by this interpreter (``-I -S``: no PATH lookup, no
    site-packages), in a directory of this user's only; also when the project is a zipped egg."""
    source = pkgutil.get_data("crawler", "chromium_launcher.py")
    if source is None:
        return None
    script = f"#!{sys.executable} -IS\n".encode() + source
    directory = Path(tempfile.gettempdir()) / f"crawler-launcher-{os.getuid()}"
    try:
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o077:  # someone else's: not ours to run
            directory = Path(tempfile.mkdtemp(prefix="crawler-launcher-"))
        path = directory / f"chromium-launcher-{hashlib.sha256(script).hexdigest()[:16]}.py"
        if not path.exists():
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(script)
            partial.chmod(0o700)
            partial.replace(path)
    except OSError as exc:
        logger.warning("Cannot write the Chromium launcher (%s)", exc.strerror)
        return str(LAUNCHER) if os.access(LAUNCHER, os.X_OK) else None
    return str(path)


def guarded_launch_options(options: dict, parent_pid: int) -> dict:
    """``PLAYWRIGHT_LAUNCH_OPTIONS`` with Chromium started through the launcher, which kills it when
    ``parent_pid`` or the driver dies (unchanged when there is no launcher or no ``executable_path``)."""
    chromium = options.get("executable_path")
    if not chromium:
        return options  # Playwright's own browser build: not used here
    launcher = launcher_path()
    if launcher is None:
        logger.warning("No Chromium launcher: a SIGKILLed crawl may leave Chromium running")
        return options
    return {
        **options,
        "executable_path": launcher,
        "args": [*options.get("args", ()), f"--crawler-chromium={chromium}", f"--crawler-parent-pid={parent_pid}"],
    }


class LazyPlaywrightDownloadHandler(RecyclingContexts, ScrapyPlaywrightDownloadHandler):
    def __init__(self, crawler):
        super().__init__(crawler)
        crawler.signals.disconnect(self._maybe_launch_in_thread, signal=signals.engine_started)
        settings = crawler.settings
        self._started = False
        self._closed = False
        self._start_lock = asyncio.Lock()
        self._init_recycling(settings)
        self.abort_types = frozenset(settings.getlist("PLAYWRIGHT_ABORT_RESOURCE_TYPES"))
        self.request_pages: dict[int, list] = {}
        shared = settings.get("PLAYWRIGHT_SHARED_BROWSER_URL")
        if shared and not (self.config.cdp_url or self.config.connect_url):
            # the worker's browser server (crawler/worker/shared_browser.py): this crawl's contexts only
            self.config.connect_url = shared
            self.config.launch_options = {}
        if flag(settings, "PLAYWRIGHT_PROCESS_GUARD"):
            self._guard_launch()

    @classmethod
    def from_crawler(cls, crawler):
        handler = _HANDLERS.get(crawler)
        if handler is None:
            handler = _HANDLERS[crawler] = cls(crawler)
        return handler

    def _guard_launch(self) -> None:
        if self.config.cdp_url or self.config.connect_url or self.config.browser_type_name != "chromium":
            return
        self.config.launch_options = guarded_launch_options(dict(self.config.launch_options), os.getpid())

    # ---- downloads ------------------------------------------------------------------------------

    async def download_request(self, request):
        if request.meta.get("playwright") and not self._started:
            async with self._start_lock:
                if not self._started:
                    await self._maybe_launch_in_thread()
                    self._started = True
        return await super().download_request(request)

    async def _download_request(self, request, spider=None):
        _REQUEST.set(request)  # this task's request, for the route handler (resource aborts)
        kept = request.meta.get("playwright_page")  # a page the spider kept, used again
        reused = self.page_slots.get(kept) if kept is not None else None
        if reused is not None:
            self.download_started(reused)
        try:
            return await super()._download_request(request, spider)
        finally:
            if reused is not None:
                self.download_ended(reused)
            self._close_left_pages(request)

    def track_page(self, request, page, slot) -> None:
        self.request_pages.setdefault(id(request), []).append((page, slot))

    def _close_left_pages(self, request) -> None:
        pages = self.request_pages.pop(id(request), ())
        for _, slot in pages:
            self.download_ended(slot)
        if request.meta.get("playwright_include_page"):
            return  # the spider's to close (errbacks get it in meta["playwright_page"])
        for page, _ in pages:
            if not page.is_closed():
                # in a task of its own: this one may be cancelled
                self.stats.inc_value("playwright/page_count/closed_after_failure")
                task = asyncio.ensure_future(self._close_page(page))
                self.background.add(task)
                task.add_done_callback(self.background.discard)

    async def _close_page(self, page) -> None:
        with suppress(Exception):
            await page.close()

    def _make_request_handler(self, **kwargs):
        route = super()._make_request_handler(**kwargs)
        request = _REQUEST.get()
        aborted = self._abort_types(request.meta) if request is not None else ()
        if not aborted:
            return route

        async def route_or_abort(playwright_route, playwright_request) -> None:
            if playwright_request.resource_type in aborted:
                await playwright_route.abort()
                self.stats.inc_value("playwright/request_count/aborted")
                return
            await route(playwright_route, playwright_request)

        return route_or_abort

    def _abort_types(self, meta: dict) -> frozenset:
        choice = meta.get("playwright_abort_resources", True)
        if not choice or takes_screenshot(meta):
            return frozenset()
        if isinstance(choice, list | tuple | set | frozenset):
            return frozenset(choice)
        return self.abort_types

    # ---- shutdown -------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:  # one handler serves several schemes: Scrapy closes it once per scheme
            return
        self._closed = True
        await super().close()

    async def _close(self) -> None:
        if not self._started:
            return
        await self._close_contexts()
        if hasattr(self, "browser"):
            logger.info("Closing browser")
            with suppress(Exception):
                await self.browser.close()
        if getattr(self, "browser_provider", None):
            await self.browser_provider.close()
