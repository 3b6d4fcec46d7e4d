"""The scans service's ASGI app: the HTTP API (OpenAPI at /openapi.json, browsable at /docs) and the
page at ``/``.

    from crawler.api.app import create_app
    app = create_app()          # project settings (environment), or create_app(settings)

Every route but ``/health``, the page's shell and ``/static`` needs ``Authorization: Bearer KEY``.
Everything the app keeps between requests lives on ``app.state`` (settings, the Redis client, the
rate limiter, metrics, the stats cache), so several apps in one process (tests) never share state.
"""

from __future__ import annotations

import importlib.util
import logging
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from crawler.api import errors
from crawler.api.metrics import ApiMetrics
from crawler.api.middleware import BodyLimit, RequestMetrics, SecurityHeaders
from crawler.api.routes import findings, heals, ops, removals, scans
from crawler.api.routes.ops import StatsCache
from crawler.api.security import RateLimiter
from crawler.db.pool import close_pools

logger = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
DESCRIPTION = """Start people-search scans, follow them live, read what each broker exposes (decrypted for
the key's user only) and ask for removals. Authenticate with `Authorization: Bearer KEY`
(`python -m crawler.api keys create --user NAME`). Errors: `{"error": {"code", "message", "field"}}`."""


def redis_client(settings):
    url = settings.get("REDIS_URL")
    if not url:
        return None
    import redis.asyncio

    timeout = settings.getfloat("REDIS_CONNECT_TIMEOUT") or 5.0
    return redis.asyncio.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=max(timeout, 5.0))


def create_app(settings=None) -> FastAPI:
    if settings is None:
        from scrapy.utils.project import get_project_settings

        settings = get_project_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        if app.state.redis is not None:
            await app.state.redis.aclose()
        await close_pools()

    app = FastAPI(
        title="Scans API",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        responses=errors.error_responses(500),
    )
    state = app.state
    state.settings = settings
    state.redis = redis_client(settings)
    state.redis_prefix = settings.get("REDIS_KEY_PREFIX") or ""
    state.limiter = RateLimiter(
        settings.getint("API_RATE_LIMIT_PER_MINUTE"),
        settings.getint("API_RATE_LIMIT_BURST"),
        state.redis,
        state.redis_prefix,
    )
    state.metrics = ApiMetrics()
    state.stats_cache = StatsCache(settings.getfloat("API_STATS_CACHE_SECONDS"))
    state.events_channel = settings.get("SCAN_EVENTS_CHANNEL") or "scans:{scan_id}:events"
    state.events_poll = settings.getfloat("API_EVENTS_POLL_SECONDS")
    state.events_keepalive = settings.getfloat("API_EVENTS_KEEPALIVE_SECONDS")

    errors.install(app)
    app.include_router(scans.router)
    app.include_router(findings.router)
    app.include_router(removals.router)
    app.include_router(ops.router)
    app.include_router(heals.router)
    if importlib.util.find_spec("crawler.api.page") is not None:
        from crawler.api.page import router as page_router

        app.include_router(page_router)
    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # outermost last: metrics see every response, headers go on every response, the body limit first
    app.add_middleware(BodyLimit, max_bytes=settings.getint("API_MAX_BODY_BYTES"))
    app.add_middleware(SecurityHeaders)
    app.add_middleware(RequestMetrics, metrics=state.metrics)
    return app
