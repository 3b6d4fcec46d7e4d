"""Shared state that degrades instead of failing requests while Redis is down.

Rate limits and circuits only protect sites and budgets: a Redis outage must not
turn every request into an error. While Redis fails, calls go to an in-process
twin with the same interface (this worker alone then keeps the limit), the
error is counted, and a warning is logged at most every 30 s.
"""

from __future__ import annotations

import logging
import time

import redis

logger = logging.getLogger(__name__)


class SharedOrLocal:
    def __init__(self, shared, local, stats, name: str):
        self.shared, self.local, self.stats, self.name = shared, local, stats, name
        self.warned_at = 0.0

    def __getattr__(self, method: str):
        """The wrapped method, made once (kept on the instance: per request, no new closure)."""
        shared, local = getattr(self.shared, method), getattr(self.local, method)

        async def call(*args, **kwargs):
            try:
                return await shared(*args, **kwargs)
            except (redis.RedisError, OSError) as exc:
                self.stats.inc_value(f"{self.name}/redis_errors")
                if time.monotonic() - self.warned_at > 30:
                    self.warned_at = time.monotonic()
                    logger.warning(
                        "%s: Redis unavailable (%s); using this worker's own state meanwhile",
                        self.name,
                        type(exc).__name__,
                    )
                return await local(*args, **kwargs)

        setattr(self, method, call)
        return call
