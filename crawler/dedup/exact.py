"""Exact dedup of fingerprints within a time window, shared through Redis.

Fingerprints are keyed hashes (never personal values). ``seen`` is one
pipelined round trip per batch; ``mark`` runs once the rows are committed, so a
crash between the two can never make a record look stored when it is not
(a record two workers both accept is resolved by PostgreSQL's ON CONFLICT).
Without Redis, ``LocalExactDedup`` offers the same interface in process.
"""

from __future__ import annotations

import time
from collections.abc import Sequence


class RedisExactDedup:
    def __init__(self, redis, prefix: str, window_seconds: int):
        self.redis = redis
        self.prefix = prefix + "dedup:"
        self.window = window_seconds  # 0 = forever

    async def seen(self, fingerprints: Sequence[str]) -> list[bool]:
        if not fingerprints:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for fingerprint in fingerprints:
                pipe.exists(self.prefix + fingerprint)
            return [bool(n) for n in await pipe.execute()]

    async def mark(self, fingerprints: Sequence[str]) -> None:
        if not fingerprints:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for fingerprint in fingerprints:
                pipe.set(self.prefix + fingerprint, 1, ex=self.window or None)
            await pipe.execute()


class LocalExactDedup:
    def __init__(self, window_seconds: int):
        self.window = window_seconds
        self.expiry: dict[str, float] = {}

    async def seen(self, fingerprints: Sequence[str]) -> list[bool]:
        now = time.monotonic()
        return [self.expiry.get(f, -1.0) > now for f in fingerprints]

    async def mark(self, fingerprints: Sequence[str]) -> None:
        expires = time.monotonic() + self.window if self.window else float("inf")
        for fingerprint in fingerprints:
            self.expiry[fingerprint] = expires
