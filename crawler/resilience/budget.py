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
    limit, remaining, reset = (_header(headers, f"X-RateLimit-{part}") for part in ("Limit", "Remaining", "Reset"))
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


class ResetClock:
    """When does the server's current window really end?

    ``X-RateLimit-Reset`` in whole seconds is up to a second off, and which way
    depends on the server: rounded up (never 0 while a window is open) or down
    (0 in its last second). Within one window every response bounds the end:
    rounded up, the end is at most ``t + S`` (the smallest such value is tight);
    rounded down, at least that. Until a whole window has been seen without a 0
    the rounding is unknown and a second is added for safety; a fractional Reset
    is taken as exact. A later end by more than a second means a new window.
    """

    def __init__(self):
        self.ends_at: float | None = None  # epoch seconds, smallest t + S of this window
        self.rounding = "unknown"  # "up", "down", "exact"
        self.zero_seen = False
        self.longest = 1.0  # the longest reset seen: roughly the window length

    def observe(self, budget: Budget, now: float | None = None) -> float:
        """Record one response's budget; returns the seconds left in its window."""
        now = time.time() if now is None else now
        reset_in = budget.reset_in
        self.longest = max(self.longest, reset_in)
        if budget.reset_style == "seconds" and reset_in != int(reset_in):
            self.rounding = "exact"
        elif reset_in == 0 and budget.remaining > 0:
            self.rounding, self.zero_seen = "down", True
        end = now + reset_in
        if self.ends_at is None or end > self.ends_at + 1.0:  # a new window
            if self.ends_at is not None and self.rounding == "unknown":
                self.rounding = "down" if self.zero_seen else "up"
            self.ends_at, self.zero_seen = end, False
        else:
            self.ends_at = min(self.ends_at, end)
        slack = 1.0 if self.rounding in ("unknown", "down") else 0.0
        return max(0.0, self.ends_at + slack - now)
