"""Fixed-window request budgets, one per key pool, as the reference API enforced them.

A window opens with the first request after the previous one closed and lasts
``window`` seconds; at most ``limit`` requests count in it. Refused requests
(429) do not count, so a client that waits exactly ``Retry-After`` gets in.
Fixed windows allow a burst of ``limit`` at the end of one window and another at
the start of the next; real APIs do that, and a client's own token bucket must
not assume a smoother server.

``X-RateLimit-Reset`` is reported either as seconds remaining (what the
reference really sent, although its docs suggested an epoch) or as an epoch
in seconds; clients must cope with both.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Decision:
    allowed: bool
    headers: dict[str, str]
    retry_after: int  # seconds until the window closes (rounded up), for 429s


class FixedWindow:
    def __init__(self, limit: int, window: float, reset_style: str = "seconds", clock=time.monotonic, wall=time.time):
        """``clock`` measures the window, ``wall`` (epoch seconds) dates it for headers and history."""
        self.limit, self.window, self.reset_style, self.clock, self.wall = limit, window, reset_style, clock, wall
        self.ends = -math.inf  # no window open yet
        self.used = 0
        self.history: list[tuple[float, int]] = []  # closed windows: (started, epoch seconds; requests counted)

    def take(self) -> Decision:
        """Count one request if the budget allows; the headers describe the state after it."""
        now = self.clock()
        if now >= self.ends:
            if self.used and len(self.history) < 100_000:
                self.history.append((self.wall() - (now - self.ends) - self.window, self.used))
            self.ends, self.used = now + self.window, 0
        allowed = self.used < self.limit
        self.used += allowed
        return self._decision(allowed, now)

    def peek(self) -> Decision:
        """The state without counting a request (for requests that never reach the budget: 401s)."""
        now = self.clock()
        return self._decision(now >= self.ends or self.used < self.limit, now)

    def _decision(self, allowed: bool, now: float) -> Decision:
        if now >= self.ends:  # no open window: the next request opens a fresh one
            left, remaining = self.window, self.limit
        else:
            left, remaining = self.ends - now, max(0, self.limit - self.used)
        seconds = max(1, math.ceil(left))
        reset = seconds if self.reset_style == "seconds" else math.ceil(self.wall() + left)
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset),
        }
        return Decision(allowed, headers, seconds)
