"""Stores the screenshot an item carries (encrypted, content-addressed) and records
its ``screenshots`` row; the item keeps only the sha256 that findings reference."""

from __future__ import annotations

import asyncio

from crawler.db.writer import BulkWriter
from crawler.items import PersonListing, Screenshot
from crawler.security import keyring_from_settings
from crawler.security.evidence import SCREENSHOT_COLUMNS, ScreenshotStore, screenshots_dir


class ScreenshotPipeline:
    def __init__(self, store: ScreenshotStore, writer: BulkWriter, stats):
        self.store = store
        self.writer = writer
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler):
        store = ScreenshotStore(screenshots_dir(crawler.settings), keyring_from_settings(crawler.settings))
        return cls(store, BulkWriter.for_crawler(crawler), crawler.stats)

    async def open_spider(self):
        await self.writer.open()

    async def close_spider(self):
        await self.writer.close()

    async def process_item(self, item):
        if isinstance(item, PersonListing | Screenshot):
            png = item.screenshot if isinstance(item, PersonListing) else item.png
            if png:
                stored = await asyncio.to_thread(self.store.save, png)
                await self.writer.add("screenshots", SCREENSHOT_COLUMNS, [stored.row()])
                self.stats.inc_value("screenshots/stored")
                if isinstance(item, PersonListing):
                    item.screenshot, item.screenshot_sha256 = None, stored.sha256
        return item
