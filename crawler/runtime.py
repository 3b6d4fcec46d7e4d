"""Start-up checks shared by every entry point, so bad configuration fails fast.

``preflight`` runs in our ``crawl`` command before the reactor starts: settings
are valid, logs are redacted, keys load, the database is reachable and its
schema current (the embedded one is migrated automatically), Redis answers.
Each failure is one ConfigError line naming the setting.
"""

from __future__ import annotations

import logging

from crawler.config import ConfigError, validate
from crawler.db.embedded import database_url
from crawler.db.migrate import connect, migrate, pending
from crawler.observability.logs import install_logging
from crawler.security import KeyRingError, keyring_from_settings

logger = logging.getLogger(__name__)


def check_database(settings) -> None:
    embedded = not settings.get("DATABASE_URL")
    try:
        url = database_url(settings)
    except Exception as exc:  # pgserver raises plain exceptions on start-up failures
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError("DATABASE_URL", f"unset, and the embedded PostgreSQL failed to start: {reason}") from None
    with connect(url, settings.getfloat("PG_CONNECT_TIMEOUT")) as conn:
        if embedded:
            if applied := migrate(conn):
                logger.info("embedded database migrated: %s", ", ".join(map(str, applied)))
        elif todo := pending(conn):
            raise ConfigError(
                "DATABASE_URL",
                f"schema is behind ({', '.join(map(str, todo))} pending); run `python -m crawler.db migrate`",
            )


def check_redis(settings) -> None:
    url = settings.get("REDIS_URL")
    if not url:
        return
    import redis

    from crawler.config import redact_url

    timeout = settings.getfloat("REDIS_CONNECT_TIMEOUT")
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout) as client:
            client.ping()
    except redis.RedisError as exc:
        raise ConfigError("REDIS_URL", f"cannot connect to {redact_url(url)}: {exc}") from None


def preflight(settings) -> None:
    """Raise ConfigError for the first thing that would stop a crawl."""
    validate(settings)
    install_logging(settings)
    check_database(settings)
    check_redis(settings)
    try:
        keyring_from_settings(settings)  # last: its development-key warning is noise before an error
    except KeyRingError as exc:
        raise ConfigError("CRAWLER_ENCRYPTION_KEYS", str(exc)) from None


class RuntimeCheck:
    """Extension: the same settings validation and log redaction for in-process crawls
    (CrawlerProcess in scripts and tests), where our ``crawl`` command does not run."""

    @classmethod
    def from_crawler(cls, crawler):
        validate(crawler.settings)
        install_logging(crawler.settings)
        return cls()
