"""One asyncio Redis client per crawler, shared by the components that keep
shared state (rate limits, circuits, deferred requests), or None without REDIS_URL."""

from __future__ import annotations

from scrapy import signals


def redis_for(crawler):
    """The crawler's ``redis.asyncio.Redis`` client (created on first use), or None."""
    url = crawler.settings.get("REDIS_URL")
    if not url:
        return None
    client = getattr(crawler, "_shared_redis", None)
    if client is None:
        import redis.asyncio  # only with REDIS_URL

        # bounded waits: a hung Redis must degrade the components, not stall every request
        timeout = crawler.settings.getfloat("REDIS_CONNECT_TIMEOUT")
        client = crawler._shared_redis = redis.asyncio.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

        async def close():
            await client.aclose()

        crawler.signals.connect(close, signal=signals.engine_stopped, weak=False)
    return client
