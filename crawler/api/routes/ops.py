"""``/api/stats`` (the caller's), ``/health`` (no key) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from crawler.api import models
from crawler.api.errors import error_responses
from crawler.api.security import caller
from crawler.store import stats as store
from crawler.store.jobs import queue_depth, worker_heartbeat_age

router = APIRouter()
User = Annotated[str, Depends(caller)]
HEALTH_TIMEOUT = 3.0


class StatsCache:
    """Owners' stats, computed at most once per ``ttl`` seconds each and one computation at a time
    in the process (finished scans bring their findings' counts on their rows, but the findings of
    running scans are counted live: run side by side, such counts could hold every pooled
    connection). Past ``ttl`` the previous answer is served while a fresh one is computed in the
    background; only an owner's first request waits."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self.entries: dict[str, tuple[float, models.Stats]] = {}
        self.pending: dict[str, asyncio.Future] = {}
        self.one_at_a_time = asyncio.Semaphore(1)

    async def get(self, settings, owner: str) -> models.Stats:
        entry = self.entries.get(owner)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        refresh = self.pending.get(owner)
        if refresh is None:
            refresh = self.pending[owner] = asyncio.ensure_future(self.refresh(settings, owner))
            refresh.add_done_callback(lambda f: f.cancelled() or f.exception())  # a failure is the caller's
        if entry is not None:
            return entry[1]  # stale while the refresh runs
        return await asyncio.shield(refresh)

    async def refresh(self, settings, owner: str) -> models.Stats:
        try:
            async with self.one_at_a_time:
                value = await compute_stats(settings, owner)
            if self.ttl > 0:
                self.entries[owner] = (time.monotonic() + self.ttl, value)
            return value
        finally:
            self.pending.pop(owner, None)


async def compute_stats(settings, owner: str) -> models.Stats:
    found, queue = await asyncio.gather(store.stats(settings, owner), queue_depth(settings))
    completed = found.scans_by_status.get("completed", 0)
    per_scan = list(found.listings_per_scan.values())
    scans = max(completed, len(per_scan))
    return models.Stats(
        scans_by_status=found.scans_by_status,
        findings_by_type=found.findings_by_type,
        findings_by_site=found.findings_by_site,
        listings_by_site=found.listings_by_site,
        listings_per_scan=models.ListingsPerScan(
            scans=completed,
            with_listings=len(per_scan),
            mean=round(sum(per_scan) / scans, 3) if scans else None,
            max=max(per_scan, default=0),
        ),
        sites=[
            models.SiteStats(
                site=site,
                runs=runs.runs,
                success_rate=round(runs.success_rate, 4) if runs.success_rate is not None else None,
                mean_duration_seconds=round(runs.mean_seconds, 3) if runs.mean_seconds is not None else None,
            )
            for site, runs in sorted(found.sites.items())
        ],
        queue=models.QueueDepth(todo=queue.get("todo", 0), doing=queue.get("doing", 0)),
    )


@router.get(
    "/api/stats",
    response_model=models.Stats,
    tags=["stats"],
    summary="The caller's scans and findings in numbers, and the queue",
    responses=error_responses(401, 429),
)
async def stats(request: Request, user: User):
    return await request.app.state.stats_cache.get(request.app.state.settings, user)


async def _check(coro) -> bool:
    try:
        await asyncio.wait_for(coro, HEALTH_TIMEOUT)
        return True
    except Exception:
        return False


@router.get(
    "/health",
    response_model=models.Health,
    tags=["operations"],
    summary="API, database, Redis (if configured) and the newest worker heartbeat; 503 when unusable",
    responses={503: {"model": models.Health, "description": "the database or Redis cannot be reached"}},
)
async def health(request: Request):
    state = request.app.state
    database = await _check(store.database_ok(state.settings))
    redis = "not_configured"
    if state.redis is not None:
        redis = "ok" if await _check(state.redis.ping()) else "error"
    heartbeat = None
    if database:
        try:
            heartbeat = await asyncio.wait_for(worker_heartbeat_age(state.settings), HEALTH_TIMEOUT)
        except Exception:
            heartbeat = None
    ok = database and redis != "error"
    body = models.Health(
        status="ok" if ok else "unavailable",
        database="ok" if database else "error",
        redis=redis,
        worker_heartbeat_age_seconds=round(heartbeat, 3) if heartbeat is not None else None,
    )
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get(
    "/metrics",
    response_class=Response,
    tags=["operations"],
    summary="Prometheus metrics",
    responses={
        200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
        **error_responses(401, 429),
    },
)
async def metrics(request: Request, user: User):
    state = request.app.state
    return Response(await state.metrics.render(state.settings), media_type=state.metrics.content_type)
