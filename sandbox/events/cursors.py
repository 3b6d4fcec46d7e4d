"""Opaque, unsigned, expiring cursors, shaped like the reference API's.

A cursor is URL-safe base64 (no padding) of compact JSON::

    {"v": 1, "p": next position, "ts": timestamp of the last event served, "id": its id,
     "s": since ms or null, "u": until ms or null, "t": type or null, "iat": issued, "exp": expires}

(epoch seconds for ``iat``/``exp``). Like the reference's it is not signed: a
client that decodes it sees the position and could forge one; the server only
checks that it decodes, that it is in range and that it has not expired. The
range and type filter travel inside the cursor, so a continued walk keeps the
filters it started with whatever the query says; that is what makes partitions
safe to resume. An expired cursor cannot be renewed: a client must resume from
what it has stored (its last timestamp and id), which is exactly the situation
the reference's fastest clients had to handle.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass

import orjson


class CursorError(Exception):
    """A cursor the server refuses; ``code`` and the message go into the JSON error body."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Cursor:
    position: int  # index of the next event to serve
    since: int | None
    until: int | None
    type: str | None
    expires: float


def encode(
    position: int,
    last_ts: int,
    last_id: str,
    since: int | None,
    until: int | None,
    type_: str | None,
    now: float,
    ttl: float,
) -> str:
    payload = {
        "v": 1,
        "p": position,
        "ts": last_ts,
        "id": last_id,
        "s": since,
        "u": until,
        "t": type_,
        "iat": round(now, 3),
        "exp": round(now + ttl, 3),
    }
    return base64.urlsafe_b64encode(orjson.dumps(payload)).rstrip(b"=").decode()


def decode(text: str, now: float, count: int) -> Cursor:
    """The cursor's content; CursorError INVALID_CURSOR or CURSOR_EXPIRED otherwise."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = orjson.loads(raw)
        position, expires = data["p"], data["exp"]
        since, until, type_ = data.get("s"), data.get("u"), data.get("t")
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise CursorError("INVALID_CURSOR", "Cursor is malformed") from None
    valid = (
        data.get("v") == 1
        and _is_int(position)
        and 0 <= position <= count
        and isinstance(expires, (int, float))
        and not isinstance(expires, bool)
        and all(v is None or _is_int(v) for v in (since, until))
        and (type_ is None or isinstance(type_, str))
    )
    if not valid:
        raise CursorError("INVALID_CURSOR", "Cursor is malformed")
    if now > expires:
        ago = max(1, math.ceil(now - expires))
        raise CursorError("CURSOR_EXPIRED", f"Cursor expired {ago} second{'s' if ago != 1 else ''} ago")
    return Cursor(position, since, until, type_, expires)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
