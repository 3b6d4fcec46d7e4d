"""A service's sense of time, which a test can freeze and move forward.

Budgets, cursors, tokens and outages read ``Clock.time`` (epoch seconds) and
``Clock.monotonic`` instead of the ``time`` module, so a test can pin the
moment a window opens or a token expires and then step exactly past it,
however slow the machine is. Both move together; a thawed clock continues from
where it stood (never backwards).

The control endpoint takes ``{"freeze": bool, "advance": seconds, "real": bool}``
(each optional; ``real`` goes back to the real clocks) and answers the state.
"""

from __future__ import annotations

import time


class Clock:
    def __init__(self):
        self.offset = 0.0  # seconds added to the real clocks
        self.frozen_at: tuple[float, float] | None = None  # (epoch, monotonic) while frozen

    def time(self) -> float:
        return (self.frozen_at[0] if self.frozen_at else time.time()) + self.offset

    def monotonic(self) -> float:
        return (self.frozen_at[1] if self.frozen_at else time.monotonic()) + self.offset

    def freeze(self) -> None:
        if self.frozen_at is None:
            self.frozen_at = (time.time(), time.monotonic())

    def thaw(self) -> None:
        if self.frozen_at is not None:  # continue from the frozen moment: the time spent frozen is skipped
            self.offset -= time.monotonic() - self.frozen_at[1]
            self.frozen_at = None

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def real(self) -> None:
        self.offset, self.frozen_at = 0.0, None

    def state(self) -> dict:
        return {"time": self.time(), "frozen": self.frozen_at is not None, "offset": self.offset}

    def control(self, body) -> dict:
        """Apply a control request's body (see the module docstring); ValueError("name: reason") if invalid."""
        if not isinstance(body, dict):
            raise ValueError("body: expected a JSON object")
        unknown = set(body) - {"freeze", "advance", "real"}
        if unknown:
            raise ValueError(f"{sorted(unknown)[0]}: unknown clock control (known: freeze, advance, real)")
        for name in ("freeze", "real"):
            if name in body and not isinstance(body[name], bool):
                raise ValueError(f"{name}: expected true or false")
        seconds = body.get("advance", 0)
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 10**9:
            raise ValueError(f"advance: expected seconds >= 0 (time never goes back), got {seconds!r}"[:200])
        if body.get("real"):
            self.real()
        if body.get("freeze") is True:
            self.freeze()
        elif body.get("freeze") is False:
            self.thaw()
        self.advance(seconds)
        return self.state()
