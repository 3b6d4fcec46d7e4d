"""Who is calling: the Bearer key, checked against ``api_keys`` (crawler/store/keys.py), and the
key's rate limit.

The limit is a token bucket per key (the reservation clock of crawler/resilience/buckets.py, the
one the crawler's rate limiter runs): in Redis with ``REDIS_URL`` (one Lua step, so every API
process shares it), in process without. A request over it is refused at once with 429 and
``Retry-After``; it never waits. Redis trouble lets requests through (logged once): the limit
protects the service, it must not take it down.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crawler.api.errors import ApiError
from crawler.resilience.buckets import LocalBuckets, RedisBuckets
from crawler.store.keys import authenticate

logger = logging.getLogger(__name__)

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key: `python -m crawler.api keys create --user NAME`, sent as `Authorization: Bearer KEY`.",
)


class RateLimiter:
    def __init__(self, per_minute: int, burst: int, redis=None, prefix: str = ""):
        self.interval_ms = 60_000 / per_minute
        self.burst = burst
        self.buckets = RedisBuckets(redis, prefix + "api:") if redis is not None else LocalBuckets()
        self.tokens = itertools.count()
        self.failed_once = False

    async def retry_after(self, key: str) -> float | None:
        """None: go ahead; else the seconds until this key may send again."""
        try:
            ok, wait_ms = await self.buckets.reserve(
                key, self.interval_ms, self.burst, str(next(self.tokens)), lease_ms=1, max_wait_ms=0
            )
        except Exception as exc:  # Redis unreachable: serve rather than refuse everyone
            if not self.failed_once:
                self.failed_once = True
                logger.warning("API rate limit not checked: %s", type(exc).__name__)
            return None
        return None if ok else wait_ms / 1000


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def caller(request: Request, credentials: Credentials) -> str:
    """The user name of the request's key (401 without a valid one, 429 over its rate limit)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(401, "an API key is required: Authorization: Bearer KEY", headers=challenge)
    state = request.app.state
    user = await authenticate(state.settings, credentials.credentials)
    if user is None:
        raise ApiError(401, "the API key is not valid or was revoked", headers=challenge)
    bucket = hashlib.sha256(credentials.credentials.encode()).hexdigest()[:32]
    wait = await state.limiter.retry_after(bucket)
    if wait is not None:
        raise ApiError(429, "rate limit exceeded for this key", headers={"Retry-After": str(max(1, math.ceil(wait)))})
    request.state.user = user
    return user
