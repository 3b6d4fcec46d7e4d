"""Dead letters: what could not be processed is recorded, never dropped silently.

A dead letter keeps the reason, the spider, the source and the offending field
*names* in the clear; the record or request itself (which may carry personal
data) is stored encrypted, so it can be inspected or replayed later.
Rows go through the crawler's BulkWriter (same transactions, same retries).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.request import request_from_dict

from crawler.db.writer import BulkWriter
from crawler.security import context, keyring_from_settings

logger = logging.getLogger(__name__)

DEAD_LETTER_COLUMNS = (
    "kind",
    "spider",
    "source",
    "scan_id",
    "reason",
    "fields",
    "method",
    "last_status",
    "attempts",
    "payload_ciphertext",
    "key_id",
)


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
            dead_letters = crawler._dead_letters = cls(
                writer, keyring_from_settings(crawler.settings), crawler.stats, crawler
            )
        return dead_letters

    @property
    def spider_name(self) -> str:
        spider = getattr(self.crawler, "spider", None)
        return spider.name if spider is not None else "?"

    def row(
        self,
        kind: str,
        reason: str,
        *,
        source: str | None = None,
        fields: list[str] | None = None,
        payload: Any = None,
        scan_id: str | None = None,
        method: str | None = None,
        last_status: int | None = None,
        attempts: int = 0,
    ) -> tuple:
        spider = self.spider_name
        sealed = None
        if payload is not None:
            sealed = self.keyring.encrypt(orjson.dumps(payload, default=str), context.dead_letter(kind, spider))
        self.stats.inc_value(f"dead_letters/{kind}")
        self.stats.inc_value(f"dead_letters/{kind}/{reason}")
        return (
            kind,
            spider,
            source,
            scan_id,
            reason,
            sorted(fields or []),
            method,
            last_status,
            attempts,
            sealed,
            self.keyring.current_key_id if sealed else None,
        )

    async def record(self, kind: str, reason: str, **details) -> None:
        await self.record_rows([self.row(kind, reason, **details)])

    async def record_rows(self, rows: list[tuple]) -> None:
        if rows:
            announce(rows)
            await self.writer.add("dead_letters", DEAD_LETTER_COLUMNS, rows)


def announce(rows: list[tuple]) -> None:
    """One warning per batch: how many, and why (reasons only, never the payloads)."""
    logger.warning("%d dead letter(s): %s", len(rows), ", ".join(sorted({row[4] for row in rows})))


# --- requests: serialised so that `scrapy crawl replay_dead_letters` can re-queue them ---

# never stored, even encrypted: a replay fetches fresh credentials
SECRET_HEADERS = frozenset({b"authorization", b"proxy-authorization", b"x-api-key", b"cookie"})
SECRET_QUERY_PARAMS = frozenset({"api_key", "apikey", "access_token", "token", "key", "client_secret"})


def _without_secret_params(url: str, secret: set[str] | frozenset[str] = SECRET_QUERY_PARAMS) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k.lower() not in secret]
    return parts._replace(query=urlencode(query)).geturl()


def _plain(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


def serialize_request(request, spider, settings=None) -> dict[str, Any]:
    """A JSON-able form of ``request`` sufficient to replay it, without credentials
    (the standard ones and the configured API key header and parameter) or
    internal/unserialisable meta (keys starting with ``_``)."""
    secret_headers, secret_params = set(SECRET_HEADERS), set(SECRET_QUERY_PARAMS)
    if settings is not None:
        secret_headers.add(str(settings.get("API_KEY_HEADER") or "").lower().encode("latin-1"))
        secret_params.add(str(settings.get("API_KEY_QUERY_PARAM") or "").lower())
    data = request.to_dict(spider=spider)
    data["url"] = _without_secret_params(data["url"], secret_params)
    data["headers"] = {
        key.decode("latin-1"): [v.decode("latin-1") for v in values]
        for key, values in data.get("headers", {}).items()
        if key.lower() not in secret_headers
    }
    data["body"] = data.get("body", b"").decode("latin-1")
    data["meta"] = {k: v for k, v in data.get("meta", {}).items() if not k.startswith("_") and _plain(v)}
    data["cb_kwargs"] = {k: v for k, v in data.get("cb_kwargs", {}).items() if _plain(v)}
    for key in ("download_slot", "retry_times", "defer_until", "defer_reason", "block"):
        data["meta"].pop(key, None)
    data.pop("flags", None)
    return {k: v for k, v in data.items() if _plain(v)}


def deserialize_request(data: dict[str, Any], spider):
    data = dict(data)
    data["headers"] = {
        k.encode("latin-1"): [v.encode("latin-1") for v in vs] for k, vs in data.get("headers", {}).items()
    }
    data["body"] = data.get("body", "").encode("latin-1")
    return request_from_dict(data, spider=spider)


def request_dead_letter(
    dead_letters: DeadLetters, request, spider, reason: str, *, attempts: int, last_status: int | None
) -> tuple:
    payload = {
        "request": serialize_request(request, spider, dead_letters.crawler.settings),
        "spider_args": getattr(spider, "spider_arguments", None),
    }
    return dead_letters.row(
        "request",
        reason,
        source=urlparse_cached(request).hostname,
        payload=payload,
        method=request.method,
        last_status=last_status,
        attempts=attempts,
    )


INSERT_NOW = (
    f"INSERT INTO dead_letters ({', '.join(DEAD_LETTER_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(DEAD_LETTER_COLUMNS))})"
)


async def write_now(settings, rows: list[tuple]) -> None:
    """Insert dead letters at once (for shutdown paths where the bulk writer is closed)."""
    from crawler.db.pool import run_in_transaction

    async def insert(conn):
        async with conn.cursor() as cur:
            await cur.executemany(INSERT_NOW, rows)

    if rows:
        announce(rows)
        await run_in_transaction(settings, insert)
