"""Reading a server's own rate budget from its response headers.

``X-RateLimit-Reset`` comes as seconds remaining or as an epoch (seconds or
milliseconds) depending on the API; which one is decided by its magnitude.
``Retry-After`` is seconds or an HTTP date.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass

EPOCH_SECONDS = 1_000_000_000  # 2001-09-09: no window lasts that long
EPOCH_MILLIS = 1_000_000_000_000


@dataclass(frozen=True)
class Budget:
    limit: int
    remaining: int
    reset_in: float  # seconds until the server's window resets
    reset_style: str  # "seconds", "epoch" or "epoch_ms": what the server sends


def _header(headers, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        return None
    return (value.decode("latin-1") if isinstance(value, bytes) else str(value)).strip()


def reset_seconds(raw: float, now: float) -> tuple[float, str]:
    if raw >= EPOCH_MILLIS:
        return max(0.0, raw / 1000 - now), "epoch_ms"
    if raw >= EPOCH_SECONDS:
        return max(0.0, raw - now), "epoch"
    return max(0.0, raw), "seconds"


def parse_budget(headers, now: float | None = None) -> Budget | None:
    """The budget the response announces, or None when it announces none (or garbage)."""
    limit, remaining, reset = (
        _header(headers, f"X-RateLimit-{part}") for part in ("Limit", "Remaining", "Reset")
    )
    if limit is None or remaining is None or reset is None:
        return None
    try:
        reset_in, style = reset_seconds(float(reset), time.time() if now is None else now)
        return Budget(int(float(limit)), int(float(remaining)), reset_in, style)
    except ValueError:
        return None


def parse_retry_after(headers, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or HTTP date), or None."""
    value = _header(headers, "Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
