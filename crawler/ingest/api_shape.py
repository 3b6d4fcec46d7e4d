"""What an events API really answers, learned from its responses instead of assumed.

Bodies come nested (``{data, pagination: {hasMore, nextCursor, ...}, meta: {total}}``)
or flat (``{data, hasMore, nextCursor}``); ids and timestamps go by several names,
and one page may mix ISO-8601, epoch seconds and epoch milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crawler import normalize

ID_FIELDS = ("id", "eventId", "event_id", "_id")
TIME_FIELDS = ("timestamp", "occurredAt", "occurred_at", "ts", "time", "createdAt", "created_at")


class ShapeError(ValueError):
    """The body is not a page of events (no ``data`` list)."""


@dataclass(frozen=True)
class Page:
    events: list[dict[str, Any]]
    has_more: bool
    next_cursor: str | None
    total: int | None
    cursor_expires_in: float | None
    nested: bool


def read_page(body: Any) -> Page:
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ShapeError("expected a JSON object with a 'data' list")
    pagination = body.get("pagination")
    nested = isinstance(pagination, dict)
    source = pagination if nested else body
    meta = body.get("meta") if isinstance(body.get("meta"), dict) else {}
    cursor = source.get("nextCursor") or source.get("next_cursor") or None
    has_more = source.get("hasMore", source.get("has_more"))
    expires = source.get("cursorExpiresIn")
    return Page(
        events=body["data"],
        has_more=bool(cursor) if has_more is None else bool(has_more),
        next_cursor=cursor,
        total=meta.get("total") if isinstance(meta.get("total"), int) else None,
        cursor_expires_in=float(expires) if isinstance(expires, int | float) else None,
        nested=nested,
    )


def detect(event: dict[str, Any], candidates: tuple[str, ...]) -> str | None:
    return next((name for name in candidates if name in event), None)


def timestamp_formats(events: list[dict[str, Any]], time_field: str) -> list[str]:
    """Which formats the page's timestamps come in (for the discovery log)."""
    found = set()
    for event in events[:500]:
        value = event.get(time_field)
        if isinstance(value, str):
            found.add("ISO-8601")
        elif isinstance(value, int | float):
            found.add("epoch ms" if abs(value) >= normalize.EPOCH_MS_THRESHOLD else "epoch s")
    return sorted(found)


@dataclass
class Discovery:
    """Everything learned from the first responses, logged once."""

    nested: bool = True
    id_field: str | None = None
    time_field: str | None = None
    formats: list[str] = field(default_factory=list)
    page_cap: int | None = None
    total: int | None = None
    ranges: bool | None = None

    def describe(self) -> str:
        return (
            f"body {'nested' if self.nested else 'flat'}, id field {self.id_field!r}, time field "
            f"{self.time_field!r} ({', '.join(self.formats) or '?'}), page cap {self.page_cap or '?'}, "
            f"total {self.total if self.total is not None else '?'}, since/until "
            f"{'honoured' if self.ranges else 'ignored' if self.ranges is False else 'not probed'}"
        )
