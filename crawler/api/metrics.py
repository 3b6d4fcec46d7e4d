"""Prometheus metrics of the API on a registry of its own (several apps in one process, as in the
tests, never collide): requests by route and status, latency, queue depth, scans by status."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from crawler.store.jobs import queue_depth
from crawler.store.stats import scans_by_status

STATUSES = ("pending", "running", "completed", "failed", "cancelled")


class ApiMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "api_requests",
            "HTTP requests by route template, method and status",
            ("route", "method", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "api_request_duration_seconds",
            "time to the response's first byte, by route template",
            ("route",),
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.queue = Gauge("api_scan_jobs", "scan jobs in the queue by state", ("state",), registry=self.registry)
        self.scans = Gauge("api_scans", "scans by status", ("status",), registry=self.registry)

    def observe(self, route: str, method: str, status: int, start: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(time.perf_counter() - start)

    async def render(self, settings) -> bytes:
        """The exposition text, with the database gauges read now."""
        for state, n in (await queue_depth(settings)).items():
            self.queue.labels(state).set(n)
        counts = await scans_by_status(settings)
        for status in STATUSES:
            self.scans.labels(status).set(counts.get(status, 0))
        return generate_latest(self.registry)
