"""Validation of the settings read in crawler/settings.py.

Each check names the setting and says what is wrong in one line, without
echoing secrets (passwords in URLs, keys). ``validate`` runs before anything
connects anywhere: in our ``crawl`` command, in ``python -m crawler.db``, and
in the RuntimeCheck extension for in-process crawls.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import psycopg.conninfo

from crawler.security.keyring import KeyRingError, parse_blind_index_key, parse_encryption_keys

LOG_LEVELS = {"CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"}
TRUE_VALUES = {"1", "true", "yes", "on"}
FALSE_VALUES = {"0", "false", "no", "off", ""}

POSITIVE_INTS = (
    "PG_POOL_MIN_SIZE",
    "PG_POOL_MAX_SIZE",
    "PG_BATCH_ROWS",
    "PG_MAX_BUFFER_ROWS",
    "DEDUP_BLOOM_CAPACITY",
    "DEDUP_MAX_IN_FLIGHT",
    "RATELIMIT_BURST",
    "CIRCUIT_FAILURE_THRESHOLD",
    "AUTH_TOKEN_MAX_FAILURES",
    "SCHEDULER_BLOOM_CAPACITY",
)
NON_NEGATIVE_INTS = ("DEDUP_WINDOW_SECONDS", "RETRY_TIMES", "MATCH_AGE_TOLERANCE")
FRACTIONS = (
    "SCHEDULER_BLOOM_ERROR_RATE",
    "DEDUP_BLOOM_ERROR_RATE",
    "DEDUP_FUZZY_THRESHOLD",
    "SLOWDOWN_FACTOR",
    "MATCH_THRESHOLD",
)  # in (0, 1)
POSITIVE_NUMBERS = (
    "SCHEDULER_LEASE_SECONDS",
    "SCHEDULER_ACK_SECONDS",
    "SCHEDULER_POLL_MIN_SECONDS",
    "SCHEDULER_POLL_MAX_SECONDS",
    "SCHEDULER_STATS_SECONDS",
    "PG_CONNECT_TIMEOUT",
    "PG_FLUSH_SECONDS",
    "PG_RETRY_SECONDS",
    "RATELIMIT_DEFAULT_RPS",
    "RATELIMIT_MAX_RESERVE_SECONDS",
    "RATELIMIT_DEFER_SECONDS",
    "CIRCUIT_WINDOW_SECONDS",
    "CIRCUIT_RESET_SECONDS",
    "RETRY_BACKOFF_MAX",
    "AUTH_TOKEN_REFRESH_MARGIN",
    "EVENTS_PROGRESS_SECONDS",
    "SCREENSHOTS_TIMEOUT",
    "SLOWDOWN_MIN_RPS",
)
NON_NEGATIVE_NUMBERS = (
    "SCHEDULER_IDLE_CLOSE_SECONDS",
    "CIRCUIT_CLOSED_CACHE_SECONDS",
    "RATELIMIT_RESET_MARGIN",
    "RATELIMIT_BLOCK_PAUSE_SECONDS",
    "RETRY_BACKOFF_BASE",
    "SCANS_UPDATE_SECONDS",
    "SLOWDOWN_PAUSE_SECONDS",
)
BOOLEANS = (
    "SCHEDULER_PERSIST",
    "SCHEDULER_DUPEFILTER_BLOOM",
    "LOG_REDACT_URLS",
    "RATELIMIT_ENABLED",
    "RATELIMIT_ADAPTIVE",
    "CIRCUIT_ENABLED",
    "BLOCKS_ENABLED",
    "SCAN_EVENTS_ENABLED",
    "SCREENSHOTS_ENABLED",
    "SLOWDOWN_ENABLED",
)

# observability (crawler/observability/): METRICS_PORT is checked by check_metrics_port
POSITIVE_NUMBERS += ("HEALTH_TIMEOUT_SECONDS",)
NON_NEGATIVE_NUMBERS += ("HEALTH_STALL_SECONDS",)
BOOLEANS += ("OTEL_ENABLED",)
# broker site definitions (spiders/sites/)
POSITIVE_INTS += ("SITES_MAX_PAGES", "SITES_MAX_CANDIDATES")


class ConfigError(Exception):
    """A bad setting: ``str(error)`` is the one line shown to the user."""

    def __init__(self, name: str, reason: str):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


def redact_url(url: str) -> str:
    """The URL without its password, safe to show in an error or a log line."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if not parts.password:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def check_database_url(value: str) -> None:
    if not value:
        return  # embedded PostgreSQL
    parts = urlsplit(value)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError("DATABASE_URL", f"scheme must be postgresql://, got {parts.scheme or 'none'!r}")
    try:
        port = parts.port
        psycopg.conninfo.conninfo_to_dict(value)
    except (ValueError, psycopg.Error) as exc:
        raise ConfigError("DATABASE_URL", f"malformed URL {redact_url(value)!r} ({exc})") from None
    if port == 0:
        raise ConfigError("DATABASE_URL", "port 0 is not a valid port")


def check_redis_url(value: str) -> None:
    if not value:
        return  # in-process state
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError("REDIS_URL", f"scheme must be redis://, rediss:// or unix://, got {parts.scheme or 'none'!r}")
    try:
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError as exc:
        raise ConfigError("REDIS_URL", f"malformed URL {redact_url(value)!r} ({exc})") from None
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError("REDIS_URL", f"no host in {redact_url(value)!r}")
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ConfigError("REDIS_URL", f"database must be a number, got {database!r}")


def check_http_url(name: str, value: str) -> None:
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(name, f"expected an http(s):// URL, got {redact_url(value)!r}")


def check_rate_sites(value) -> None:
    from middlewares.rate_limit import parse_sites

    try:
        rates = parse_sites(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ConfigError("RATELIMIT_SITES", f"expected JSON {{host: rps}} or host=rps,host=rps ({exc})") from None
    if bad := [host for host, rps in rates.items() if rps <= 0]:
        raise ConfigError("RATELIMIT_SITES", f"rates must be positive (host {bad[0]})")


def check_keys(settings) -> None:
    if enc := settings.get("CRAWLER_ENCRYPTION_KEYS"):
        try:
            parse_encryption_keys(enc)
        except KeyRingError as exc:
            raise ConfigError("CRAWLER_ENCRYPTION_KEYS", str(exc)) from None
    if blind := settings.get("CRAWLER_BLIND_INDEX_KEY"):
        try:
            parse_blind_index_key(blind)
        except KeyRingError as exc:
            raise ConfigError("CRAWLER_BLIND_INDEX_KEY", str(exc)) from None


def check_logging(settings) -> None:
    fmt = settings.get("LOG_FORMAT") or "text"
    if fmt not in ("text", "json") and "%(message)" not in fmt:
        raise ConfigError("LOG_FORMAT", f"expected 'text' or 'json', got {fmt!r}")
    level = str(settings.get("LOG_LEVEL") or "INFO").upper()
    if level not in LOG_LEVELS and not level.isdigit():
        raise ConfigError("LOG_LEVEL", f"expected one of {', '.join(sorted(LOG_LEVELS))}, got {level!r}")


def _number(settings, name: str) -> float:
    """The setting as a float; NaN (which fails every range check) when it is not a number."""
    try:
        return float(settings.get(name))
    except (TypeError, ValueError):
        return float("nan")


def check_numbers(settings) -> None:
    for name in POSITIVE_INTS + POSITIVE_NUMBERS:
        raw = settings.get(name)
        try:
            value = int(raw) if name in POSITIVE_INTS else float(raw)
        except (TypeError, ValueError):
            kind = "an integer" if name in POSITIVE_INTS else "a number"
            raise ConfigError(name, f"expected {kind}, got {raw!r}") from None
        if value <= 0:
            raise ConfigError(name, f"must be positive, got {raw!r}")
    raw = str(settings.get("SCHEDULER_JOB_PRIORITY", "0")).strip()
    if not raw.lstrip("-").isdigit():
        raise ConfigError("SCHEDULER_JOB_PRIORITY", f"expected a whole number, got {raw!r}")
    for name in NON_NEGATIVE_INTS:
        raw = str(settings.get(name)).strip()
        if not raw.isdigit():
            raise ConfigError(name, f"expected a whole number >= 0, got {settings.get(name)!r}")
    for name in NON_NEGATIVE_NUMBERS:
        if not _number(settings, name) >= 0:
            raise ConfigError(name, f"expected a number >= 0, got {settings.get(name)!r}")
    for name in FRACTIONS:
        if not 0 < _number(settings, name) < 1:
            raise ConfigError(name, f"expected a number between 0 and 1, got {settings.get(name)!r}")
    if int(settings.get("PG_POOL_MIN_SIZE")) > int(settings.get("PG_POOL_MAX_SIZE")):
        raise ConfigError("PG_POOL_MIN_SIZE", "must not exceed PG_POOL_MAX_SIZE")
    for name in BOOLEANS:
        raw = str(settings.get(name)).strip().lower()
        if raw not in TRUE_VALUES | FALSE_VALUES:
            raise ConfigError(name, f"expected true or false, got {settings.get(name)!r}")


def check_metrics_port(value) -> None:
    from crawler.observability.ports import PortsError, parse_ports

    try:
        parse_ports(value)
    except PortsError as exc:
        raise ConfigError("METRICS_PORT", str(exc)) from None


def validate(settings) -> None:
    """Raise ConfigError for the first bad setting."""
    check_database_url(settings.get("DATABASE_URL") or "")
    check_redis_url(settings.get("REDIS_URL") or "")
    check_http_url("OPENAI_BASE_URL", settings.get("OPENAI_BASE_URL") or "")
    check_http_url("AUTH_TOKEN_URL", settings.get("AUTH_TOKEN_URL") or "")
    check_http_url("EVENTS_BASE_URL", settings.get("EVENTS_BASE_URL") or "")
    check_rate_sites(settings.get("RATELIMIT_SITES"))
    check_metrics_port(settings.get("METRICS_PORT"))
    check_keys(settings)
    check_logging(settings)
    check_numbers(settings)


def log_level(settings) -> int:
    level = str(settings.get("LOG_LEVEL") or "INFO").upper()
    return int(level) if level.isdigit() else logging.getLevelName(level)


def flag(settings, name: str) -> bool:
    """A boolean setting that accepts true/false, yes/no, on/off, 1/0."""
    return str(settings.get(name)).strip().lower() in TRUE_VALUES
