"""Writes ``TableRows`` items into PostgreSQL through the crawler's BulkWriter
(buffered COPY + ``INSERT ... ON CONFLICT DO NOTHING``, checkpoints in the same
transaction, retries, backpressure: see crawler/db/writer.py)."""

from __future__ import annotations

from crawler.db.writer import BulkWriter
from crawler.items import TableRows


class PostgresPipeline:
    def __init__(self, writer: BulkWriter):
        self.writer = writer

    @classmethod
    def from_crawler(cls, crawler):
        return cls(BulkWriter.for_crawler(crawler))

    async def open_spider(self):
        await self.writer.open()

    async def close_spider(self):
        await self.writer.close()

    async def process_item(self, item):
        if isinstance(item, TableRows):
            await self.writer.add(item.table, item.columns, item.rows, item.checkpoint)
        return item
