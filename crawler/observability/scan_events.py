"""Scan lifecycle events fanned out to the log and, with ``REDIS_URL``, to one Redis
pub/sub channel per scan (``SCAN_EVENTS_CHANNEL``, default ``scans:{scan_id}:events``).

The scan row is the record (crawler.scans.ScanTracker); these messages are
notifications for whoever watches a scan live (the REST API, a web page). Each
message is one JSON object without personal data: site ids, stages, kinds,
counts and confidences, never names, values or URLs (broker URLs carry names)::

    {"event": "progress", "scan_id": ..., "site": ..., "stage": "detail", "counts": {...}, "ts": ...}
    {"event": "found_data", "scan_id": ..., "site": ..., "confidence": 0.97, "data_types": {"phone": 2, ...}, "ts": ...}
    {"event": "candidate_rejected", "scan_id": ..., "site": ..., "confidence": 0.31, "ts": ...}
    {"event": "error", "scan_id": ..., "site": ..., "kind": "captcha", "source": "block", "ts": ...}
    {"event": "completed", "scan_id": ..., "status": "completed", "counters": {site: {...}}, "ts": ...}

Signal handlers only queue a message (most signals are sent synchronously from
callbacks and middlewares); one task publishes the queue in order, pipelined.
``completed`` waits until everything queued before it is published. A Redis
failure costs the live view, never the crawl: counted, logged once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter

import orjson

from crawler import signals as project_signals
from crawler.config import flag
from crawler.scans import site_of
from crawler.shared_redis import redis_for

logger = logging.getLogger(__name__)

EVENTS = ("progress", "found_data", "candidate_rejected", "error", "completed")


def _counts(counts) -> dict:
    """Only numbers (and their keys) from a spider's progress counts: nothing personal passes."""
    if not isinstance(counts, dict):
        return {}
    return {str(k): v for k, v in counts.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _data_types(listing) -> dict:
    findings = getattr(listing, "findings", None)
    return dict(Counter(f.data_type for f in findings())) if callable(findings) else {}


def message(event: str, scan_id: str, **fields) -> dict:
    return {"event": event, "scan_id": str(scan_id), **fields, "ts": round(time.time(), 3)}


class ScanEvents:
    """Extension: scan signals -> log lines and Redis messages."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.stats = crawler.stats
        settings = crawler.settings
        self.enabled = flag(settings, "SCAN_EVENTS_ENABLED") if settings.get("SCAN_EVENTS_ENABLED") else True
        self.redis_url = settings.get("REDIS_URL") if self.enabled else ""
        self.template = settings.get("SCAN_EVENTS_CHANNEL") or "scans:{scan_id}:events"
        self.prefix = settings.get("REDIS_KEY_PREFIX") or ""
        self.queue: list[tuple[str, bytes]] = []
        self.task: asyncio.Task | None = None
        self.failed_once = False

    @classmethod
    def from_crawler(cls, crawler):
        events = cls(crawler)
        connect = crawler.signals.connect
        connect(events.progress, signal=project_signals.scan_progress)
        connect(events.found_data, signal=project_signals.found_data)
        connect(events.candidate_rejected, signal=project_signals.candidate_rejected)
        connect(events.error, signal=project_signals.scan_error)
        connect(events.completed, signal=project_signals.scan_completed)
        connect(events.block_detected, signal=project_signals.block_detected)
        return events

    def channel(self, scan_id: str) -> str:
        return self.template.format(scan_id=scan_id, prefix=self.prefix)

    # --- signal handlers (synchronous: they only queue) ---------------------------------

    def progress(self, scan_id, site, stage, counts=None, **_):
        logger.debug("scan %s %s: %s page handled %s", scan_id, site, stage, _counts(counts))
        self.emit(message("progress", scan_id, site=site, stage=stage, counts=_counts(counts)))

    def found_data(self, scan_id, site, listing=None, confidence=None, **_):
        data_types = _data_types(listing)
        logger.info(
            "scan %s %s: listing accepted (confidence %.2f, %d datum/data)",
            scan_id,
            site,
            confidence or 0.0,
            sum(data_types.values()),
        )
        self.emit(message("found_data", scan_id, site=site, confidence=confidence, data_types=data_types))

    def candidate_rejected(self, scan_id, site, listing=None, confidence=None, **_):
        logger.debug("scan %s %s: candidate rejected (confidence %.2f)", scan_id, site, confidence or 0.0)
        self.emit(message("candidate_rejected", scan_id, site=site, confidence=confidence))

    def error(self, scan_id, site, kind, request=None, source="spider", **_):
        logger.info("scan %s %s: error %s (%s)", scan_id, site, kind, source)
        self.emit(message("error", scan_id, site=site, kind=kind, source=source))

    def block_detected(self, request, kind, domain, **_):
        scan = getattr(self.crawler.spider, "scan", None)
        if scan is not None:
            self.error(scan.scan_id, site_of(self.crawler, request, domain), kind, source="block")

    async def completed(self, scan_id, status, counters, **_):
        logger.info("scan %s %s: %s", scan_id, status, summary(counters))
        self.emit(message("completed", scan_id, status=status, counters=counters))
        await self.drain()

    # --- publishing ---------------------------------------------------------------------

    def emit(self, payload: dict) -> None:
        self.stats.inc_value(f"scan_events/{payload['event']}")
        if not self.redis_url:
            return
        self.queue.append((self.channel(payload["scan_id"]), orjson.dumps(payload)))
        if self.task is None or self.task.done():
            try:
                self.task = asyncio.get_running_loop().create_task(self.publish())
            except RuntimeError:  # no loop (a signal sent outside the reactor): the next emit or drain sends it
                self.task = None

    async def publish(self) -> None:
        while self.queue:
            batch, self.queue = self.queue, []
            try:
                client = redis_for(self.crawler)
                async with client.pipeline(transaction=False) as pipe:
                    for channel, data in batch:
                        pipe.publish(channel, data)
                    await pipe.execute()
                self.stats.inc_value("scan_events/published", len(batch))
            except Exception as exc:  # the live view is lost, the scan row still has everything
                self.stats.inc_value("scan_events/redis_errors")
                if not self.failed_once:
                    self.failed_once = True
                    logger.warning("scan events not published to Redis: %s", type(exc).__name__)

    async def drain(self) -> None:
        """Publish everything queued so far (the last scan event); the crawler's shared client
        closes when the engine stops."""
        if self.task is not None and not self.task.done():
            await self.task
        if self.queue:
            await self.publish()


def summary(counters: dict) -> str:
    """One line per scan, no personal data: ``fastpeople: 3 listing(s), 1 accepted, errors captcha=2; ...``"""
    parts = []
    for site, c in sorted(counters.items()):
        text = f"{site}: {c.get('outcome', '?')}, {c.get('listings', 0)} listing(s), {c.get('accepted', 0)} accepted"
        if errors := c.get("errors"):
            text += ", errors " + " ".join(f"{k}={v}" for k, v in sorted(errors.items()))
        parts.append(text)
    return "; ".join(parts) or "no sites"
