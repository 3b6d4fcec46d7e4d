"""A scan's live progress as Server-Sent Events.

Events, each ``event: NAME`` and one JSON ``data:`` line: ``snapshot`` (the scan's status and
per-site progress, from its row: first, then whenever the row changes), the crawl's own messages
from Redis as they come (``progress``, ``found_data``, ``candidate_rejected``, ``error``: site ids,
stages, counts, kinds, never personal values), and last ``completed`` (``{"status", "progress"}``)
once the scan is finished; then the stream ends. Comment lines keep idle connections open.

With ``REDIS_URL`` the scan's channel (``SCAN_EVENTS_CHANNEL``) is subscribed before the row is first
read, so nothing published in between is lost; the row is still read again every
``API_EVENTS_POLL_SECONDS``, because some endings publish nothing (a worker marking a crashed scan
``failed``, a cancel of a pending scan). Without Redis the row is all there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import orjson

from crawler.api import views
from crawler.store.scans import get_scan

logger = logging.getLogger(__name__)

FORWARDED = frozenset({"progress", "found_data", "candidate_rejected", "error"})


def sse(event: str, data) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def snapshot(scan) -> dict:
    detail = views.detail(scan)
    return {
        "id": scan.id,
        "status": scan.status,
        "progress": [p.model_dump() for p in detail.progress],
        "counts": detail.counts.model_dump(),
        "error": scan.error,
    }


class ScanEventStream:
    def __init__(self, state, owner: str, scan_id: str):
        self.settings = state.settings
        self.redis = state.redis
        self.channel = state.events_channel.format(scan_id=scan_id, prefix=state.redis_prefix)
        self.poll = state.events_poll
        self.keepalive = state.events_keepalive
        self.owner = owner
        self.scan_id = scan_id
        self.pubsub = None
        self.scan = None

    async def read(self):
        return await get_scan(self.settings, self.owner, self.scan_id, with_target=False)

    async def open(self) -> bool:
        """Subscribe (with Redis), then read the row; False (and nothing held) when it is not the owner's."""
        if self.redis is not None:
            try:
                self.pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
                await self.pubsub.subscribe(self.channel)
            except Exception as exc:  # the row alone still tells the story
                logger.warning("scan events: Redis subscribe failed (%s); following the row", type(exc).__name__)
                await self.close()
        self.scan = await self.read()
        if self.scan is None:
            await self.close()
            return False
        return True

    async def close(self) -> None:
        pubsub, self.pubsub = self.pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):  # a connection already gone
                await pubsub.aclose()

    async def message(self, wait: float) -> dict | None:
        if self.pubsub is None:
            await asyncio.sleep(wait)
            return None
        try:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
        except Exception as exc:
            logger.warning("scan events: Redis read failed (%s); following the row", type(exc).__name__)
            await self.close()
            return None
        if message is None or message.get("type") != "message":
            return None
        try:
            payload = orjson.loads(message["data"])
        except orjson.JSONDecodeError:
            return None
        return payload if isinstance(payload, dict) else None

    async def events(self):
        try:
            scan = self.scan
            yield b"retry: 3000\n\n" + sse("snapshot", snapshot(scan))
            if scan.status in views.FINAL:
                yield sse("completed", {"status": scan.status, **snapshot(scan)})
                return
            last_read = last_sent = time.monotonic()
            seen = scan.updated_at
            while True:
                payload = await self.message(min(self.poll, 1.0))
                now = time.monotonic()
                if payload is not None:
                    event = payload.get("event")
                    if event == "completed":
                        scan = await self.read() or scan
                        status = payload.get("status") if isinstance(payload.get("status"), str) else scan.status
                        yield sse("completed", {**snapshot(scan), "status": status})
                        return
                    if event in FORWARDED:
                        payload.pop("scan_id", None)
                        yield sse(event, payload)
                        last_sent = now
                if now - last_read >= self.poll:
                    last_read = now
                    fresh = await self.read()
                    if fresh is None:  # deleted meanwhile
                        yield sse("completed", {**snapshot(scan), "status": scan.status})
                        return
                    scan = fresh
                    if scan.status in views.FINAL:
                        yield sse("completed", {"status": scan.status, **snapshot(scan)})
                        return
                    if scan.updated_at != seen:
                        seen = scan.updated_at
                        yield sse("snapshot", snapshot(scan))
                        last_sent = now
                if now - last_sent >= self.keepalive:
                    yield b": keepalive\n\n"
                    last_sent = now
        finally:
            await self.close()
