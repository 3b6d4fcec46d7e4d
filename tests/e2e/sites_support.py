"""Helpers of the site-definition e2e tests (tests/e2e/test_sites_*.py): a real `scrapy crawl <site>`
against the sandbox, then the scan row, the decrypted listing URLs of its findings and the crawl's stats."""

from __future__ import annotations

import os
import re
import time
import uuid

from crawler.security.context import finding_listing_url
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, crawl_keyring, http


def configure(base_url: str, **changes) -> dict:
    """Put a sandbox site back to its defaults (counters cleared, rate windows fresh), then apply ``changes``."""
    reply = http(f"{base_url}/_sandbox/config", data={"defaults": True, "reset": True, **changes})
    assert reply.status == 200, reply.body
    return reply.json()


def module_env(database_url: str, data_dir) -> dict:
    """conftest's ``crawl_env`` for a module-scoped crawl (one slow crawl, several assertions)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_FILE", "LOG_FORMAT")}
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(data_dir),
        CRAWLER_ENCRYPTION_KEYS=ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=BLIND_INDEX_KEY,
    )
    return env


def site_stats(base_url: str) -> dict:
    return http(f"{base_url}/_sandbox/stats").json()


def person_arguments(person, *, state: bool = True, age: bool = True) -> list[str]:
    args = ["-a", f"first_name={person.first_name}", "-a", f"last_name={person.last_name}"]
    if state:
        args += ["-a", f"state={person.current.state}"]
    if age:
        args += ["-a", f"age={person.age}"]
    return args


def crawl_site(
    scrapy_cmd, crawl_env: dict, sandbox: dict, site: str, arguments: list[str], *, timeout: float = 240, **settings
) -> tuple[str, object, float]:
    """`scrapy crawl <site>` with the sandbox's URL for it; (scan id, completed process, wall seconds)."""
    scan_id = str(uuid.uuid4())
    env = {
        **crawl_env,
        "SITES_BASE_URLS": f"{site}={sandbox[site]}",
        "LOG_LEVEL": "INFO",
        **{k: str(v) for k, v in settings.items()},
    }
    started = time.monotonic()
    result = scrapy_cmd(["crawl", site, *arguments, "-a", f"scan_id={scan_id}"], env, timeout=timeout)
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr[-3000:]
    return scan_id, result, seconds


def crawl_stats(log: str) -> dict[str, int]:
    """The integer values of the crawl's final stats dump ("Dumping Scrapy stats")."""
    dump = log.rpartition("Dumping Scrapy stats")[2]
    return {key: int(value) for key, value in re.findall(r"'([^']+)': (\d+)[,}]", dump)}


def scan_row(db, scan_id: str) -> tuple[str, dict]:
    return db.execute("SELECT status, counters FROM scans WHERE id = %s", (scan_id,)).fetchone()


def finding_urls(db, scan_id: str, site: str) -> set[str]:
    """The decrypted listing URLs of the scan's findings on ``site``."""
    keys = crawl_keyring()
    rows = db.execute(
        "SELECT DISTINCT listing_url_ciphertext FROM findings WHERE scan_id = %s AND website_id = %s", (scan_id, site)
    ).fetchall()
    return {keys.decrypt_text(bytes(row[0]), finding_listing_url(scan_id)) for row in rows}
