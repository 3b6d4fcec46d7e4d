"""Settings of logging, metrics, health, tracing and scan events (crawler/observability/)."""

from __future__ import annotations

from crawler.setting import Component, Setting

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")


def check_log_format(value) -> None:
    fmt = value or "text"
    if fmt not in ("text", "json") and "%(message)" not in fmt:
        raise ValueError(f"expected 'text' or 'json', got {fmt!r}")


def check_log_level(value) -> None:
    level = str(value or "INFO").upper()
    if level not in LOG_LEVELS and not level.isdigit():
        raise ValueError(f"expected one of {', '.join(sorted(LOG_LEVELS))}, got {level!r}")


def check_metrics_port(value) -> None:
    from crawler.observability.ports import parse_ports  # PortsError is a ValueError

    parse_ports(value)


LOGGING = Component(
    "Logging",
    "crawler/observability/logs.py",
    (
        Setting(
            "LOG_FORMAT",
            "str",
            "text",
            "`text` (readable lines) or `json` (one object per line); a %-format string is accepted as in Scrapy",
            check=check_log_format,
            accepts="`text`, `json`, %-format",
        ),
        Setting(
            "LOG_LEVEL", "str", "INFO", "Scrapy's log level", check=check_log_level, accepts="level name or number"
        ),
        Setting("LOG_FILE", "str", "", "write the log to this file instead of stderr", accepts="path or empty"),
        Setting(
            "LOG_REDACT_URLS",
            "bool",
            "true",
            "replace URL paths and queries in logs by a short hash (broker URLs carry names)",
        ),
    ),
)

METRICS = Component(
    "Metrics, health and tracing",
    "crawler/observability/",
    (
        Setting(
            "METRICS_PORT",
            "str",
            "",
            "`/metrics` and `/health` of the worker: a port, a range `9410-9419` (first free one: several workers "
            "on one machine), or `0` (any free port); the port is logged and kept in the `metrics/port` stat",
            check=check_metrics_port,
            shown_default="empty (off)",
            accepts="port, range, `0` or empty",
        ),
        Setting(
            "METRICS_HOST",
            "str",
            "127.0.0.1",
            "bind address of that server (`0.0.0.0` to be scraped from elsewhere)",
            accepts="address",
        ),
        Setting(
            "HEALTH_TIMEOUT_SECONDS",
            "number",
            "2",
            "each `/health` dependency check (Redis, PostgreSQL) gives up after this long",
            above=0,
        ),
        Setting(
            "HEALTH_STALL_SECONDS",
            "number",
            "0",
            "`/health` turns 503 after this long without a response or item (0: never for that reason)",
            min=0,
        ),
        Setting(
            "OTEL_ENABLED",
            "bool",
            "false",
            "OpenTelemetry spans request -> item -> database write; needs `opentelemetry-sdk` (not a dependency; "
            "without it the crawl says so once and runs untraced). Spans go over OTLP (with "
            "`opentelemetry-exporter-otlp-proto-http`; the SDK's `OTEL_EXPORTER_OTLP_*` variables apply); "
            "`OTEL_TRACES_EXPORTER=console` prints each span as JSON on stdout as it ends instead, to look at "
            "traces without a collector",
        ),
    ),
)

SCAN_EVENTS = Component(
    "Scan events",
    "crawler/observability/scan_events.py",
    (
        Setting(
            "SCAN_EVENTS_ENABLED",
            "bool",
            "true",
            "publish scan events to Redis (with `REDIS_URL`); the log lines stay",
        ),
        Setting(
            "SCAN_EVENTS_CHANNEL",
            "str",
            "scans:{scan_id}:events",
            "the pub/sub channel per scan (`{scan_id}`; `{prefix}` = `REDIS_KEY_PREFIX`)",
            accepts="template",
        ),
    ),
)

COMPONENTS = (LOGGING, METRICS, SCAN_EVENTS)
