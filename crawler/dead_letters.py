"""Dead letters: what could not be processed is recorded, never dropped silently.

A dead letter keeps the reason, the spider, the source and the offending field
*names* in the clear; the record or request itself (which may carry personal
data) is stored encrypted, so it can be inspected or replayed later.
Rows go through the crawler's BulkWriter (same transactions, same retries).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from crawler.db.writer import BulkWriter
from crawler.security import context, keyring_from_settings

logger = logging.getLogger(__name__)

DEAD_LETTER_COLUMNS = (
    "kind", "spider", "source", "scan_id", "reason", "fields", "method", "last_status", "attempts",
    "payload_ciphertext", "key_id",
)  # fmt: skip


class DeadLetters:
    def __init__(self, writer: BulkWriter, keyring, stats, crawler):
        self.writer = writer
        self.keyring = keyring
        self.stats = stats
        self.crawler = crawler

    @classmethod
    def for_crawler(cls, crawler) -> DeadLetters:
        dead_letters = getattr(crawler, "_dead_letters", None)
        if dead_letters is None:
            writer = BulkWriter.for_crawler(crawler)
            dead_letters = crawler._dead_letters = cls(writer, keyring_from_settings(crawler.settings), crawler.stats, crawler)
        return dead_letters

    @property
    def spider_name(self) -> str:
        spider = getattr(self.crawler, "spider", None)
        return spider.name if spider is not None else "?"

    def row(self, kind: str, reason: str, *, source: str | None = None, fields: list[str] | None = None,
            payload: Any = None, scan_id: str | None = None, method: str | None = None,
            last_status: int | None = None, attempts: int = 0) -> tuple:  # fmt: skip
        spider = self.spider_name
        sealed = None
        if payload is not None:
            sealed = self.keyring.encrypt(orjson.dumps(payload, default=str), context.dead_letter(kind, spider))
        self.stats.inc_value(f"dead_letters/{kind}")
        self.stats.inc_value(f"dead_letters/{kind}/{reason}")
        return (
            kind, spider, source, scan_id, reason, sorted(fields or []), method, last_status, attempts,
            sealed, self.keyring.current_key_id if sealed else None,
        )  # fmt: skip

    async def record(self, kind: str, reason: str, **details) -> None:
        await self.record_rows([self.row(kind, reason, **details)])

    async def record_rows(self, rows: list[tuple]) -> None:
        if rows:
            logger.warning("%d dead letter(s): %s", len(rows), ", ".join(sorted({r[4] for r in rows})))
            await self.writer.add("dead_letters", DEAD_LETTER_COLUMNS, rows)
