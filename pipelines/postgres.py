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
            writer = self.writer
            if item.fresh_rows:
                await writer.add(item.table, item.columns, item.fresh_rows, fresh=True)
            # checkpoint and callbacks go with the last rows added, so they follow all of them
            await writer.add(item.table, item.columns, item.rows, item.checkpoint, on_commit=item.on_commit)
        return item
