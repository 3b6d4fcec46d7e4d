"""scrapy-playwright's download handler, started on first use.

The stock handler starts Playwright (a Node driver process) when the engine
starts, so every crawl pays for it, also those that never render a page (events
ingestion, ``fetch``). This one starts it with the first request marked
``meta["playwright"]`` (a browser-rendered site, an evidence screenshot); other
requests go through Scrapy's own HTTP handler as before.
"""

from __future__ import annotations

import asyncio

from scrapy import signals
from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler


class LazyPlaywrightDownloadHandler(ScrapyPlaywrightDownloadHandler):
    def __init__(self, crawler):
        super().__init__(crawler)
        crawler.signals.disconnect(self._maybe_launch_in_thread, signal=signals.engine_started)
        self._started = False
        self._start_lock = asyncio.Lock()

    async def download_request(self, request):
        if request.meta.get("playwright") and not self._started:
            async with self._start_lock:
                if not self._started:
                    await self._maybe_launch_in_thread()
                    self._started = True
        return await super().download_request(request)

    async def _close(self) -> None:
        if self._started:
            await super()._close()
