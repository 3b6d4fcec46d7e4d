"""One Chromium per worker process, shared by its local crawls (``WORKER_SHARED_BROWSER``).

Starting and closing Chromium costs a crawl about 1 CPU-second and 2 to 5 s of wall time
(bench/scans.py), as much as rendering its pages. The worker starts Chromium once, through
Playwright (the same flags as a crawl's own launch) and crawler/chromium_launcher.py (Chromium's
process group is SIGKILLed when the worker or its driver dies, even by SIGKILL), with a DevTools
port on 127.0.0.1 next to Playwright's pipe. Each crawl gets its URL as ``PLAYWRIGHT_SHARED_CDP_URL``
and connects over CDP (crawler/browser.py): its contexts are its own, created with
``disposeOnDetach``, so Chromium closes them when that crawl disconnects, also when it is SIGKILLed
(tests/worker/test_shared_browser.py). A crawl that finds no shared browser launches its own.

The browser is started on first use and again when it died; it is replaced after
``WORKER_SHARED_BROWSER_MAX_CRAWLS`` crawls (whatever Chromium keeps between contexts does not grow
without bound), once the crawls connected to it ended.

Any local user can connect to a DevTools port: on a shared machine, set ``WORKER_SHARED_BROWSER``
to false.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import urllib.request

import orjson

from crawler.browser import guarded_launch_options

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def websocket_url(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/version", timeout=5) as response:
        return orjson.loads(response.read())["webSocketDebuggerUrl"]


class SharedBrowser:
    """The worker's Chromium: ``await lease()`` gives a crawl its CDP URL, ``release()`` when it ended."""

    def __init__(self, settings):
        self.launch_options = dict(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS"))
        self.max_crawls = settings.getint("WORKER_SHARED_BROWSER_MAX_CRAWLS")
        self.guard = settings.getbool("PLAYWRIGHT_PROCESS_GUARD", True)
        self.lock = asyncio.Lock()
        self.playwright = None
        self.browser = None
        self.url: str | None = None
        self.crawls = 0  # crawls given this browser
        self.running = 0  # of which still running
        self.retired: list = []  # [url, browser, crawls running]: past max_crawls, closed once those ended
        self.background: set[asyncio.Task] = set()

    async def lease(self) -> str | None:
        """The CDP URL for one crawl (None: no shared browser, the crawl launches its own)."""
        async with self.lock:
            try:
                if self.browser is None or not self.browser.is_connected():
                    await self._start()
                elif self.max_crawls and self.crawls >= self.max_crawls:
                    self._retire()
                    await self._start()
            except Exception as exc:
                logger.warning("shared browser unavailable (%s); the crawl launches its own", type(exc).__name__)
                await self._close_browser(self.browser)
                self.browser = self.url = None
                return None
            self.crawls += 1
            self.running += 1
            return self.url

    def release(self, url: str | None) -> None:
        if url is None:
            return
        if url == self.url:
            self.running -= 1
            return
        for entry in self.retired:
            if entry[0] == url:
                entry[2] -= 1
                if entry[2] <= 0:
                    self.retired.remove(entry)
                    self._close_soon(entry[1])
                break

    def _retire(self) -> None:
        if self.running <= 0:
            self._close_soon(self.browser)
        else:
            self.retired.append([self.url, self.browser, self.running])
        self.browser = self.url = None

    async def _start(self) -> None:
        if self.playwright is None:
            from playwright.async_api import async_playwright

            self.playwright = await async_playwright().start()
        await self._close_browser(self.browser)  # a dead one: its driver side
        port = free_port()
        options = dict(self.launch_options)
        options["args"] = [*options.get("args", ()), f"--remote-debugging-port={port}"]
        if self.guard:
            options = guarded_launch_options(options, os.getpid())
        self.browser = await asyncio.wait_for(self.playwright.chromium.launch(**options), START_TIMEOUT)
        self.url = await asyncio.to_thread(websocket_url, port)
        self.crawls = self.running = 0
        logger.info("shared browser started (DevTools on 127.0.0.1:%s)", port)

    def _close_soon(self, browser) -> None:
        task = asyncio.ensure_future(self._close_browser(browser))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _close_browser(self, browser) -> None:
        if browser is not None:
            with contextlib.suppress(Exception):
                await browser.close()

    async def close(self) -> None:
        async with self.lock:
            for _, browser, _ in self.retired:
                await self._close_browser(browser)
            self.retired.clear()
            await asyncio.gather(*self.background, return_exceptions=True)
            await self._close_browser(self.browser)
            self.browser = self.url = None
            if self.playwright is not None:
                with contextlib.suppress(Exception):
                    await self.playwright.stop()
                self.playwright = None
