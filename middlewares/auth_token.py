"""Credentials for APIs: expiring bearer tokens and static API keys.

Bearer tokens (AUTH_TOKEN_URL, or the spider's ``auth_token_url``): a token is
fetched with ``POST <url>`` (JSON ``{client_id, client_secret}``) before the
first request, refreshed AUTH_TOKEN_REFRESH_MARGIN seconds before it expires
(at most a fifth of its lifetime, for short-lived tokens) and at once on a 401,
with one refresh in flight however many requests wait; the request that got
the 401 is replayed with the new token. While the token endpoint fails,
requests are deferred with exponential backoff; after AUTH_TOKEN_MAX_FAILURES
failed refreshes in a row they become dead letters (``auth_token_unavailable``).

Static keys (API_KEY, or the spider's ``api_key``): sent in API_KEY_HEADER, or
as the query parameter API_KEY_QUERY_PARAM when that is set.

Credentials go only to hosts in AUTH_DOMAINS (or the spider's
``allowed_domains``; by default the token URL's host), or to requests with
``meta["auth"] = True``; ``meta["auth"] = False`` sends none. They never reach
logs or dead letters (both strip them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
from scrapy import Request
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.httpobj import urlparse_cached

from crawler.dead_letters import DeadLetters, request_dead_letter
from crawler.scheduling.deferring import defer

logger = logging.getLogger(__name__)

GENERATION = "_auth_generation"  # meta: which token a request carried


class TokenError(Exception):
    """The token endpoint did not hand out a token."""


class AuthTokenMiddleware:
    def __init__(self, crawler):
        self.crawler = crawler
        self.settings = crawler.settings
        self.stats = crawler.stats
        self.token: str | None = None
        self.expires_at = 0.0
        self.generation = 0
        self.lock = asyncio.Lock()
        self.failures = 0  # consecutive failed refreshes
        self.retry_at = 0.0

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def spider_or_setting(self, attribute: str, setting: str):
        return getattr(self.crawler.spider, attribute, None) or self.settings.get(setting) or None

    @property
    def token_url(self) -> str | None:
        return self.spider_or_setting("auth_token_url", "AUTH_TOKEN_URL")

    @property
    def api_key(self) -> str | None:
        return self.spider_or_setting("api_key", "API_KEY")

    def applies(self, request) -> bool:
        wanted = request.meta.get("auth")
        if wanted is not None:
            return bool(wanted)
        if not (self.token_url or self.api_key):
            return False
        domains = self.settings.getlist("AUTH_DOMAINS") or list(
            getattr(self.crawler.spider, "allowed_domains", None) or []
        )
        if not domains and self.token_url:
            domains = [urlsplit(self.token_url).hostname]
        host = urlparse_cached(request).hostname or ""
        return any(host == d or host.endswith("." + d) for d in domains if d)

    async def process_request(self, request):
        if not self.applies(request):
            # e.g. redirected to another host: what we attached earlier must not follow it
            request.headers.pop(self.settings.get("API_KEY_HEADER"), None)
            if request.meta.pop(GENERATION, None) is not None:
                request.headers.pop("Authorization", None)
            return None
        if key := self.api_key:
            param = self.settings.get("API_KEY_QUERY_PARAM")
            if param:
                return self.with_query_key(request, param, key)
            request.headers[self.settings.get("API_KEY_HEADER")] = key
        if self.token_url:
            try:
                token = await self.current_token()
            except Exception as exc:  # no token now: the request waits, it is not lost
                self.stats.inc_value("auth/token_failures")
                if self.failures >= self.settings.getint("AUTH_TOKEN_MAX_FAILURES"):
                    await self.give_up(request, exc)
                delay = min(60.0, 2.0 ** min(self.failures, 6))
                logger.warning("auth: no token (%s); request deferred %.0fs", type(exc).__name__, delay)
                return await defer(self.crawler, request, time.time() + delay, "auth")
            request.headers["Authorization"] = f"Bearer {token}"
            request.meta[GENERATION] = self.generation
        return None

    async def give_up(self, request, exc: Exception):
        """The token endpoint keeps failing: the request becomes a dead letter (replayable
        once the credentials work) instead of waiting forever."""
        if not request.meta.get("dead_letter", True):  # its sender records the failure (retry.py says why)
            raise IgnoreRequest(f"no token after {self.failures} failed refreshes ({type(exc).__name__})")
        dead_letters = DeadLetters.for_crawler(self.crawler)
        row = request_dead_letter(
            dead_letters,
            request,
            self.crawler.spider,
            "auth_token_unavailable",
            attempts=request.meta.get("retry_times", 0) + 1,
            last_status=None,
        )
        await dead_letters.record_rows([row])
        raise IgnoreRequest(
            f"no token after {self.failures} failed refreshes ({type(exc).__name__}); dead letter recorded"
        )

    @staticmethod
    def with_query_key(request, param: str, key: str):
        parts = urlsplit(request.url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        if query.get(param) == key:
            return None
        query[param] = key
        return request.replace(url=parts._replace(query=urlencode(query)).geturl())

    async def process_response(self, request, response):
        if response.status != 401 or GENERATION not in request.meta:
            return response
        replays = request.meta.get("auth_replays", 0)
        if replays >= 2:  # a fresh token was refused too: the credentials are wrong
            logger.error("auth: %s refused a fresh token twice; check the client credentials", response.url)
            return response
        await self.current_token(stale_generation=request.meta[GENERATION])
        self.stats.inc_value("auth/replays_after_401")
        new = request.replace(dont_filter=True)
        new.headers.pop("Authorization", None)
        new.meta["auth_replays"] = replays + 1
        return new

    def margin(self, lifetime: float) -> float:
        return min(self.settings.getfloat("AUTH_TOKEN_REFRESH_MARGIN"), lifetime / 5)

    async def current_token(self, stale_generation: int | None = None) -> str:
        """The valid token; refreshed when about to expire or when ``stale_generation``
        (the token a 401 came back for) is still the current one. One refresh at a time."""
        async with self.lock:
            stale = stale_generation is not None and stale_generation == self.generation
            if self.token is None or stale or time.monotonic() >= self.expires_at:
                if time.monotonic() < self.retry_at:  # a refresh just failed: no burst of attempts
                    raise TokenError("token endpoint failed a moment ago")
                try:
                    await self.refresh()
                except Exception:
                    self.failures += 1
                    self.retry_at = time.monotonic() + min(60.0, 2.0 ** min(self.failures, 6))
                    raise
                self.failures = 0
            return self.token

    async def refresh(self) -> None:
        body = {
            "client_id": self.spider_or_setting("auth_client_id", "AUTH_CLIENT_ID") or "",
            "client_secret": self.spider_or_setting("auth_client_secret", "AUTH_CLIENT_SECRET") or "",
        }
        request = Request(
            self.token_url,
            method="POST",
            body=orjson.dumps(body),
            dont_filter=True,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
            # its own backoff is ours (above); never dead-lettered: its body holds the client secret
            meta={"auth": False, "dont_ratelimit": True, "dont_circuit": True, "dont_retry": True},
        )
        response = await self.crawler.engine.download_async(request)
        try:
            data = orjson.loads(response.body)
            token, lifetime = str(data["access_token"]), float(data.get("expires_in") or 3600)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise TokenError(f"token endpoint answered {response.status} without an access_token") from None
        self.token, self.generation = token, self.generation + 1
        self.expires_at = time.monotonic() + lifetime - self.margin(lifetime)
        self.stats.inc_value("auth/token_refreshes")
        logger.info("auth: new token (generation %d, valid %.0fs)", self.generation, lifetime)
