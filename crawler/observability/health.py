"""Is this worker healthy? Engine running, Redis and PostgreSQL reachable, progress.

``HealthCheck.check()`` answers ``(healthy, report)``; the server turns it into
``GET /health`` (200 when healthy, 503 otherwise, a JSON report either way).
A worker that is shutting down reports unhealthy at once, so a load balancer or
orchestrator stops counting on it while it drains.

Each dependency check is bounded by HEALTH_TIMEOUT_SECONDS and they run
concurrently, so a hung service makes /health slow by at most that much.
PostgreSQL is checked on a connection of its own, not the crawl's pool: a pool
busy with COPYs is not an unreachable database. Error texts are reduced to the
exception class and the first line, which never carries a password.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import psycopg

from crawler.db.embedded import database_url
from crawler.observability.metrics import CrawlMetrics
from crawler.shared_redis import redis_for


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    first = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


class HealthCheck:
    def __init__(self, crawler, timeout: float, stall_seconds: float):
        self.crawler = crawler
        self.timeout = timeout
        self.stall_seconds = stall_seconds
        self.metrics = CrawlMetrics.from_crawler(crawler)  # its progress time is ours
        self.started_at = time.time()

    @classmethod
    def from_crawler(cls, crawler) -> HealthCheck:
        settings = crawler.settings
        return cls(crawler, settings.getfloat("HEALTH_TIMEOUT_SECONDS"), settings.getfloat("HEALTH_STALL_SECONDS"))

    async def check(self) -> tuple[bool, dict]:
        redis_ok, postgres_ok = await asyncio.gather(self._timed(self.redis()), self._timed(self.postgres()))
        engine = getattr(self.crawler, "engine", None)
        running = bool(engine is not None and engine.running)
        # not running: starting (the spider is being opened) or stopping (draining after a signal, or done)
        state = "running" if running else "stopping" if getattr(engine, "_stopping", True) else "starting"
        report: dict = {"engine": {"ok": running, "state": state}}
        if redis_ok is not None:
            report["redis"] = redis_ok
        report["postgres"] = postgres_ok
        last = self.metrics.last_progress_at
        since = time.time() - (last or self.started_at)
        progress: dict = {
            "last_at": datetime.fromtimestamp(last, UTC).isoformat() if last else None,
            "seconds_since": round(since, 3),
            "ok": not (self.stall_seconds > 0 and since > self.stall_seconds),
        }
        report["progress"] = progress
        healthy = all(part["ok"] for part in report.values())
        return healthy, {"status": "ok" if healthy else "unhealthy", "checks": report}

    async def _timed(self, probe) -> dict | None:
        started = time.monotonic()
        try:
            if await asyncio.wait_for(probe, self.timeout) is False:
                return None  # not configured
        except Exception as exc:  # any failure to answer is "unreachable", with its reason
            return {"ok": False, "error": _reason(exc)}
        return {"ok": True, "latency_ms": round((time.monotonic() - started) * 1000, 1)}

    async def redis(self):
        client = redis_for(self.crawler)
        if client is None:
            return False
        await client.ping()
        return True

    async def postgres(self):
        url = database_url(self.crawler.settings)
        connect_timeout = max(1, round(self.timeout))
        async with await psycopg.AsyncConnection.connect(
            url, connect_timeout=connect_timeout, autocommit=True, application_name="crawler-health"
        ) as conn:
            await conn.execute("SELECT 1")
        return True
