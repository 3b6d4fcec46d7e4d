"""The time a resilience Lua script works with.

Redis's own clock (``TIME``) by default: every worker then reads one clock,
whatever its host's says. A caller may pass its own time instead (a ``clock``
in seconds, like ``time.time``), so that tests move time forward themselves.
"""

from __future__ import annotations

from collections.abc import Callable

# `now` in milliseconds: the script's last argument when it is a number, else Redis's clock
NOW_MS = """
local now = tonumber(ARGV[#ARGV])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""


def now_arg(clock: Callable[[], float] | None) -> int | str:
    """The last argument of a script that starts with NOW_MS: the clock's time in ms, or "" for Redis's."""
    return "" if clock is None else int(clock() * 1000)
