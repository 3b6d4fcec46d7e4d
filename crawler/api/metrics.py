"""Prometheus metrics of the API on a registry of its own (several apps in one process, as in the
tests, never collide): requests by route and status, latency, queue depth, scans by status, and
removal: requests by state and site, time to a verified removal per site (from the history),
the reappearance rate and open human tasks. Database gauges are read when /metrics is scraped."""

from __future__ import annotations

import time

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from crawler.store.jobs import queue_depth
from crawler.store.removal_views import removal_counts
from crawler.store.removals import STATUSES as REMOVAL_STATUSES
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
        self.removals = Gauge(
            "removal_requests", "removal requests by state and site", ("state", "site"), registry=self.registry
        )
        self.time_to_removal = Gauge(
            "removal_time_to_removal_seconds",
            "seconds from a request (or its new attempt) to its verified removal, per site: mean, median (0.5), max",
            ("site", "stat"),
            registry=self.registry,
        )
        self.removed = Gauge("removal_removed", "verified removals per site", ("site",), registry=self.registry)
        self.reappearance = Gauge(
            "removal_reappearance_ratio",
            "listings found again after a verified removal, per verified removal",
            registry=self.registry,
        )
        self.tasks_open = Gauge(
            "removal_tasks_open", "human tasks open, by kind and site", ("kind", "site"), registry=self.registry
        )

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
        await self.read_removals(settings)
        return generate_latest(self.registry)

    async def read_removals(self, settings) -> None:
        counts = await removal_counts(settings)
        self.removals.clear()  # a site/state pair that emptied must read 0, not its last value
        sites = {site for _, site in counts.by_state_and_site}
        for state in REMOVAL_STATUSES:
            for site in sites:
                self.removals.labels(state, site).set(counts.by_state_and_site.get((state, site), 0))
        self.time_to_removal.clear()
        self.removed.clear()
        for site, (n, mean, median, top) in counts.time_to_removal.items():
            self.removed.labels(site).set(n)
            for stat, value in (("mean", mean), ("0.5", median), ("max", top)):
                self.time_to_removal.labels(site, stat).set(value)
        self.reappearance.set(counts.reappearance_rate)
        self.tasks_open.clear()
        for (kind, site), n in counts.open_tasks.items():
            self.tasks_open.labels(kind, site).set(n)
