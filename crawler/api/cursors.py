"""Opaque keyset cursors: base64url of a small JSON list (the last row's sort key).

Opaque so clients do not build them; validated on the way back so a tampered cursor is a 422
naming ``cursor``, never a database error.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import orjson

from crawler.api.errors import ApiError


def encode(parts: list) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")


def _decode(cursor: str) -> list:
    try:
        parts = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise ApiError(422, "cursor: not a cursor this API returned", "cursor") from None
    if not isinstance(parts, list) or len(parts) != 2 or not all(isinstance(p, str) for p in parts):
        raise ApiError(422, "cursor: not a cursor this API returned", "cursor")
    return parts


def scan_cursor(created_at: datetime, scan_id: str) -> str:
    return encode([created_at.isoformat(), str(scan_id)])


def parse_scan_cursor(cursor: str) -> tuple[datetime, str]:
    created_at, scan_id = _decode(cursor)
    try:
        when = datetime.fromisoformat(created_at)
        if when.tzinfo is None:
            raise ValueError
        return when, str(uuid.UUID(scan_id))
    except ValueError:
        raise ApiError(422, "cursor: not a cursor this API returned", "cursor") from None


def listing_cursor(site: str, url_index: bytes) -> str:
    return encode([site, url_index.hex()])


def parse_listing_cursor(cursor: str) -> tuple[str, bytes]:
    site, url_index = _decode(cursor)
    try:
        return site, bytes.fromhex(url_index)
    except ValueError:
        raise ApiError(422, "cursor: not a cursor this API returned", "cursor") from None


def removal_cursor(request_id: int) -> str:
    return encode(["removal", str(request_id)])


def parse_removal_cursor(cursor: str) -> int:
    kind, value = _decode(cursor)
    if kind != "removal" or not value.isdigit() or not 0 < int(value) < 2**63:
        raise ApiError(422, "cursor: not a cursor this API returned", "cursor")
    return int(value)
