"""Prometheus metrics of one worker, read from the crawler's stats and signals.

Most figures already exist as Scrapy stats kept by the components themselves
(``downloader/response_status_count/200``, ``ratelimit/waits``,
``dedup/listings/duplicate/<site>``...). ``StatsCollector`` turns them into
metric families at scrape time, so no component imports prometheus_client and
a stat added later shows up by adding one line to ``STAT_METRICS``. Signals
feed what stats do not carry: items and findings by site, circuit state per
domain, the pipeline flush latency histogram (a BulkWriter hook), progress.

Every metric lives in the crawler's own registry (never the process-global
one), so several crawlers in one process do not collide. Served by
``crawler.observability.server.ObservabilityServer`` on METRICS_PORT.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from itemadapter import ItemAdapter
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from scrapy import signals

from crawler import signals as project_signals
from crawler.items import TableRows

CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}

# stats key prefix -> (metric name, help, label names); the rest of the key, split on "/", gives the labels
STAT_METRICS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("downloader/request_count", "crawler_requests", "Requests sent to the downloader.", ()),
    ("downloader/response_status_count/", "crawler_responses", "Responses by HTTP status.", ("status",)),
    ("retry/reason_count/", "crawler_retries", "Retries by reason.", ("reason",)),
    ("dedup/listings/duplicate/", "crawler_dedup_hits", "Listings dropped as already stored, by site.", ("site",)),
    (
        "dedup/events/duplicate_in_page/",
        "crawler_dedup_event_hits",
        "Event ids repeated within a page, by source.",
        ("source",),
    ),
    ("pg/rows_written/", "crawler_db_rows_written", "Rows inserted into PostgreSQL, by table.", ("table",)),
    (
        "pg/rows_duplicate/",
        "crawler_db_rows_duplicate",
        "Rows PostgreSQL already had (ON CONFLICT), by table.",
        ("table",),
    ),
    ("ratelimit/waits", "crawler_ratelimit_waits", "Requests that waited for a rate-limit slot.", ()),
    ("ratelimit/wait_seconds", "crawler_ratelimit_wait_seconds", "Seconds spent waiting for rate-limit slots.", ()),
    ("ratelimit/deferred", "crawler_ratelimit_deferred", "Requests sent back to the scheduler to wait.", ()),
    ("ratelimit/429", "crawler_ratelimit_429", "429 answers received.", ()),
    (
        "scheduler/deferred/",
        "crawler_requests_deferred",
        "Requests held back by the scheduler, by reason.",
        ("reason",),
    ),
    ("blocks/", "crawler_blocks", "Block pages by kind and domain.", ("kind", "domain")),
    ("dead_letters/", "crawler_dead_letters", "Dead letters by kind and reason.", ("kind", "reason")),
    (
        "heals/",
        "crawler_heals",
        "Heal attempts of broken extraction by site, page kind, method (heuristic, llm) and outcome.",
        ("site", "kind", "method", "outcome"),
    ),
]

# stats key prefix -> ("where" label, how to get the class name from the rest of the key)
ERROR_STATS = [
    ("spider_exceptions/", "spider"),
    ("downloader/exception_type_count/", "downloader"),
    ("item_dropped_reasons_count/", "pipeline"),
    ("dedup/errors/", "dedup"),
]
# gauges the shared Redis scheduler keeps in stats (crawler/scheduling/shared.py), refreshed at each lease renewal
LEASES_HELD = "scheduler/leases/held"
SHARED_COUNTS = {
    "queued": "scheduler/shared/queue_depth",
    "delayed": "scheduler/shared/delayed",
    "leased": "scheduler/shared/leases_outstanding",
}


def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class StatsCollector:
    """A prometheus_client collector over one crawler's stats and engine."""

    def __init__(self, crawler):
        self.crawler = crawler

    def describe(self):
        return []  # families depend on the stats present; no describe-time checks

    def collect(self) -> Iterator:
        stats = self.crawler.stats.get_stats() if self.crawler.stats else {}
        for prefix, name, documentation, labels in STAT_METRICS:
            family = CounterMetricFamily(name, documentation, labels=labels)
            for key, value in stats.items():
                number = _number(value)
                if number is None or not key.startswith(prefix):
                    continue
                rest = key[len(prefix) :].split("/") if labels else []
                if len(rest) != len(labels) or (labels and not all(rest)):
                    continue  # e.g. "blocks/captcha" (a total) next to "blocks/captcha/<domain>"
                family.add_metric(rest, number)
            yield family
        errors = CounterMetricFamily(
            "crawler_errors", "Errors by where they happened and class.", labels=("where", "class")
        )
        for key, value in stats.items():
            number = _number(value)
            for prefix, where in ERROR_STATS:
                if number is not None and key.startswith(prefix) and "/" not in key[len(prefix) :]:
                    errors.add_metric([where, key[len(prefix) :].rsplit(".", 1)[-1]], number)
        if failures := _number(stats.get("pg/write_failures")):
            errors.add_metric(["database", "WriteFailed"], failures)
        yield errors
        yield from self._engine_gauges(stats)

    def _engine_gauges(self, stats: dict) -> Iterator:
        engine = getattr(self.crawler, "engine", None)
        slot = getattr(engine, "_slot", None)  # private, but the only way to the scheduler and in-flight set
        running = GaugeMetricFamily("crawler_engine_running", "1 while the engine runs (0 once stopping).")
        running.add_metric([], 1.0 if engine is not None and engine.running else 0.0)
        yield running
        depth = GaugeMetricFamily("crawler_queue_depth", "Requests waiting in this worker's scheduler.")
        scheduler = getattr(slot, "scheduler", None)
        if scheduler is not None:
            # a scheduler without __len__, or its backend failing: no depth sample this scrape
            with contextlib.suppress(Exception):
                depth.add_metric([], float(len(scheduler)))
        yield depth
        in_flight = GaugeMetricFamily("crawler_requests_in_flight", "Requests being downloaded or processed.")
        if slot is not None:
            in_flight.add_metric([], float(len(slot.inprogress)))
        yield in_flight
        leases = GaugeMetricFamily(
            "crawler_leases_outstanding", "Requests this worker leased from the shared queue and has not acknowledged."
        )
        if (held := _number(stats.get(LEASES_HELD))) is not None:
            leases.add_metric([], held)
        yield leases
        shared = GaugeMetricFamily(
            "crawler_shared_queue",
            "The shared job across all workers: queued, delayed and leased requests (with REDIS_URL).",
            labels=("state",),
        )
        for state, key in SHARED_COUNTS.items():
            if (value := _number(stats.get(key))) is not None:
                shared.add_metric([state], value)
        yield shared


class CrawlMetrics:
    """The registry of one crawler: stats-backed families plus signal-fed metrics."""

    def __init__(self, crawler):
        self.crawler = crawler
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatsCollector(crawler))
        from crawler.ai.metrics import LLM_METRICS  # calls, cost and tokens: one collector per process

        self.registry.register(LLM_METRICS)
        # CPU, memory, open files of this worker (Linux /proc; nothing elsewhere)
        ProcessCollector(registry=self.registry)
        self.items = Counter(
            "crawler_items", "Items that went through every pipeline, by site.", ["site"], registry=self.registry
        )
        self.findings = Counter(
            "crawler_findings", "Findings rows (exposed data) produced, by site.", ["site"], registry=self.registry
        )
        self.circuit_state = Gauge(
            "crawler_circuit_state",
            "Circuit per domain: 0 closed, 1 half-open, 2 open.",
            ["domain"],
            registry=self.registry,
        )
        self.circuit_changes = Counter(
            "crawler_circuit_changes",
            "Circuit state changes by domain and new state.",
            ["domain", "state"],
            registry=self.registry,
        )
        self.flush_seconds = Histogram(
            "crawler_pipeline_flush_seconds",
            "PostgreSQL flush (COPY + upsert transaction) latency.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.flush_rows = Counter(
            "crawler_pipeline_flushed_rows", "Rows offered to PostgreSQL by flushes.", registry=self.registry
        )
        self.last_progress = Gauge(
            "crawler_last_progress_timestamp_seconds", "Unix time of the last response or item.", registry=self.registry
        )
        self.last_progress_at: float | None = None

    @classmethod
    def from_crawler(cls, crawler) -> CrawlMetrics:
        """One per crawler, shared by the server and the health check."""
        metrics = getattr(crawler, "_metrics", None)
        if metrics is None:
            metrics = crawler._metrics = cls(crawler)
            metrics.connect()
        return metrics

    def connect(self) -> None:
        connect = self.crawler.signals.connect
        connect(self.item_scraped, signal=signals.item_scraped)
        connect(self.progress, signal=signals.response_received)
        connect(self.circuit_changed, signal=project_signals.circuit_changed)
        from crawler.db.writer import BulkWriter  # keeps this module importable alone

        writer = BulkWriter.for_crawler(self.crawler)
        observers = getattr(writer, "flush_observers", None)
        if observers is not None:
            observers.append(self.flushed)

    def progress(self, *args, **kwargs) -> None:
        self.last_progress_at = time.time()
        self.last_progress.set(self.last_progress_at)

    def item_scraped(self, item, spider, **kwargs) -> None:
        self.progress()
        if isinstance(item, TableRows):
            site = item.source or getattr(spider, "site_id", spider.name)
            if item.table == "findings":
                self.findings.labels(site).inc(len(item.rows) + len(item.fresh_rows))
        else:
            adapter = ItemAdapter(item)
            site = adapter.get("site") or adapter.get("source") or getattr(spider, "site_id", spider.name)
        self.items.labels(str(site)).inc()

    def circuit_changed(self, domain: str, state: str, **kwargs) -> None:
        self.circuit_state.labels(domain).set(CIRCUIT_STATES.get(state, -1))
        self.circuit_changes.labels(domain, state).inc()

    def flushed(self, seconds: float, rows: int) -> None:
        self.flush_seconds.observe(seconds)
        self.flush_rows.inc(rows)
