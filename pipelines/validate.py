"""First pipeline: normalise what spiders extracted and set aside what is invalid.

- PersonListing: phones to E.164, e-mails lower-cased and checked, addresses
  normalised. An invalid value is removed from the listing and recorded as a
  dead letter (field name and reason; the value only encrypted); a listing
  without a name or URL is dead-lettered whole and dropped.
- EventBatch: each event needs an id, a type and a timestamp (ISO-8601, epoch
  seconds or milliseconds, mixed within a page), normalised to UTC. Valid events
  become ``events`` rows (the whole event kept as the payload); invalid ones are
  dead letters, and the rest of the batch carries on. The hot path: every value
  of an event row is text (the timestamp rendered once, in UTC), so the writer
  joins it for COPY without a call per value; the common timestamp forms
  (ISO-8601 in UTC, whole epoch numbers) skip the general parser, which still
  decides every other form and words every error.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import orjson
from scrapy.exceptions import DropItem

from crawler import normalize
from crawler.dead_letters import DeadLetters
from crawler.items import EventBatch, PersonListing, TableRows
from crawler.normalize import EPOCH_MS_THRESHOLD, EPOCH_US_THRESHOLD

EVENT_COLUMNS = ("id", "type", "occurred_at", "payload", "source")
ID_FIELDS = ("id", "eventId", "event_id", "_id", "uuid")
TYPE_FIELDS = ("type", "eventType", "event_type", "name")
TIME_FIELDS = ("timestamp", "occurredAt", "occurred_at", "ts", "time", "createdAt", "created_at")


_UTC = normalize.UTC
_fromisoformat, _fromtimestamp = dt.datetime.fromisoformat, dt.datetime.fromtimestamp


# the one shape PostgreSQL reads as it comes; everything else (week or ordinal dates, other digits,
# separators or zones) is rendered anew: one odd value must not fail the whole COPY batch
_CANONICAL_UTC = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3}|\.[0-9]{6})?(?:Z|\+00:00)"
)
_canonical_utc = _CANONICAL_UTC.fullmatch  # fromisoformat has checked the ranges


def event_time(value) -> str:
    """The timestamp as UTC ISO-8601 text, as ``normalize.timestamp`` reads it (ValueError if invalid)."""
    kind = type(value)
    if kind is str and len(value) > 10 and value[4] == "-":  # ISO-8601, never an epoch number
        try:
            moment = _fromisoformat(value)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is _UTC:
            # already UTC: sent as it came when in the plain form (formatting costs more than parsing)
            return value if _canonical_utc(value) else moment.isoformat()
    elif (kind is int or kind is float) and 0 <= value < EPOCH_US_THRESHOLD:  # epoch s or ms (NaN: not here)
        return _fromtimestamp(value / 1000 if value >= EPOCH_MS_THRESHOLD else value, _UTC).isoformat()
    return normalize.timestamp(value).isoformat()  # other forms and zones; the errors' wording


def detect_field(event: dict[str, Any], candidates: tuple[str, ...]) -> str | None:
    return next((name for name in candidates if name in event), None)


class ValidatePipeline:
    def __init__(self, dead_letters: DeadLetters, stats, phone_region: str):
        self.dead_letters = dead_letters
        self.stats = stats
        self.phone_region = phone_region

    @classmethod
    def from_crawler(cls, crawler):
        return cls(DeadLetters.for_crawler(crawler), crawler.stats, crawler.settings.get("VALIDATE_PHONE_REGION"))

    async def open_spider(self):
        await self.dead_letters.writer.open()

    async def close_spider(self):
        await self.dead_letters.writer.close()

    async def process_item(self, item):
        if isinstance(item, EventBatch):
            return await self.validate_events(item)
        if isinstance(item, PersonListing):
            return await self.validate_listing(item)
        return item

    # --- person listings ---------------------------------------------------

    def _clean(self, values, normaliser, field, item, rejects):
        kept = []
        for value in values:
            try:
                normalised = normaliser(value)
            except ValueError as exc:
                rejects.append(
                    self.dead_letters.row(
                        "record",
                        f"invalid {field}: {exc}",
                        source=item.site,
                        fields=[field],
                        payload={field: value, "listing_url": item.listing_url},
                        scan_id=item.scan_id,
                    )
                )
                continue
            if normalised not in kept:
                kept.append(normalised)
        return kept

    async def validate_listing(self, item: PersonListing) -> PersonListing:
        self.stats.inc_value("validate/listings")
        missing = [f for f in ("full_name", "listing_url", "scan_id") if not str(getattr(item, f) or "").strip()]
        if missing:
            await self.dead_letters.record(
                "record",
                "listing without " + ", ".join(missing),
                source=item.site,
                fields=missing,
                payload={"site": item.site, "listing_url": item.listing_url},
                scan_id=item.scan_id or None,
            )
            raise DropItem(f"invalid listing from {item.site}: missing {', '.join(missing)} (dead letter recorded)")
        rejects: list[tuple] = []
        item.full_name = " ".join(item.full_name.split())
        item.phones = self._clean(
            item.phones, lambda v: normalize.phone_e164(v, self.phone_region), "phones", item, rejects
        )
        item.emails = self._clean(item.emails, normalize.email, "emails", item, rejects)
        item.addresses = self._clean(item.addresses, normalize.address, "addresses", item, rejects)
        item.relatives = [" ".join(r.split()) for r in item.relatives if r.strip()]
        if not 0 <= item.confidence <= 1:
            raise DropItem(f"listing confidence {item.confidence} outside [0, 1]")
        await self.dead_letters.record_rows(rejects)
        self.stats.inc_value("validate/values_rejected", len(rejects))
        return item

    # --- event batches -------------------------------------------------------

    async def validate_events(self, batch: EventBatch) -> TableRows:
        first = batch.events[0] if batch.events else {}
        id_field = batch.id_field or detect_field(first, ID_FIELDS)
        type_field = batch.type_field or detect_field(first, TYPE_FIELDS)
        time_field = batch.time_field or detect_field(first, TIME_FIELDS)
        rows, rejects = [], []
        timestamp, dumps, source = event_time, orjson.dumps, batch.source
        for event in batch.events:
            try:
                event_id, event_type, occurred = event[id_field], event[type_field], event[time_field]
                if event_id is None or event_id == "" or not event_type:
                    raise KeyError
                if type(event_id) is not str:
                    event_id = str(event_id)
                if type(event_type) is not str:
                    event_type = str(event_type)
                rows.append((event_id, event_type, timestamp(occurred), dumps(event).decode(), source))
            except orjson.JSONEncodeError as exc:
                rejects.append(
                    self.dead_letters.row(
                        "record",
                        f"event not JSON-serialisable: {exc}",
                        source=source,
                        fields=[],
                        payload=repr(event),
                    )
                )
            except (KeyError, TypeError):
                missing = [f or "?" for f in (id_field, type_field, time_field) if not f or not event.get(f)]
                rejects.append(
                    self.dead_letters.row(
                        "record",
                        "event missing id, type or timestamp",
                        source=source,
                        fields=missing,
                        payload=event,
                    )
                )
            except ValueError as exc:
                rejects.append(
                    self.dead_letters.row(
                        "record",
                        f"invalid timestamp: {exc}",
                        source=source,
                        fields=[time_field],
                        payload=event,
                    )
                )
        batch.events = []  # the rows hold all of it: the page's dicts are not kept while it waits to be written
        await self.dead_letters.record_rows(rejects)
        self.stats.inc_value("validate/events", len(rows))
        self.stats.inc_value("validate/events_rejected", len(rejects))
        return TableRows("events", EVENT_COLUMNS, rows, source=source, checkpoint=batch.checkpoint)
