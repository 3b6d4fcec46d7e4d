"""Session fixtures: a throwaway PostgreSQL database and Redis key prefix on the
real local servers, the sandbox on free ports, and a helper to run real crawls.

TEST_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres) is
the server where the throwaway database is created; TEST_REDIS_URL likewise.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
import redis

import support
from sandbox.launch import running
from support import REDIS_URL, create_database, drop_database, run_scrapy

# --- Tiers ------------------------------------------------------------------
# unit: no services; integration: PostgreSQL and/or Redis; e2e: real crawls, the
# sandbox in a subprocess, Chromium. A module may declare its tier with
# `pytestmark = pytest.mark.<tier>`; otherwise the tier follows from where the
# test lives and the fixtures it uses, so `pytest -m unit` never needs a service.
TIERS = ("unit", "integration", "e2e")
E2E_FIXTURES = {"sandbox", "crawl_env", "scrapy_cmd"}
SERVICE_FIXTURES = {"database_url", "own_database_url", "db", "redis_prefix"}


def tier_of(item) -> str:
    declared = [tier for tier in TIERS if item.get_closest_marker(tier)]
    if declared:
        return max(declared, key=TIERS.index)  # the heaviest declared tier wins
    fixtures = set(getattr(item, "fixturenames", ()))
    if "e2e" in item.path.parts or fixtures & E2E_FIXTURES:
        return "e2e"
    params = getattr(getattr(item, "callspec", None), "params", {})
    if fixtures & SERVICE_FIXTURES or set(map(str, params.values())) & {"redis", "postgres"}:
        return "integration"
    return "unit"


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(item)
        if not item.get_closest_marker(tier):
            item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def database_url():
    """A fresh, migrated database for the session, dropped afterwards."""
    name, url = create_database()
    yield url
    drop_database(name)


@pytest.fixture
def own_database_url():
    """A migrated database for one test alone (for tests that touch every row)."""
    name, url = create_database()
    yield url
    drop_database(name)


@pytest.fixture
def db(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="session")
def redis_prefix():
    """A key prefix of this session's own; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="session")
def sandbox():
    """`python -m sandbox` with every service on a free port and a small events data set; yields {service: base URL}."""
    with running(["--free-ports", "--events-count", "20000"], timeout=30) as urls:
        yield urls


@pytest.fixture
def crawl_env(database_url, tmp_path):
    """Environment for a crawl subprocess: the test database, fixed keys, its own DATA_DIR."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_FILE", "LOG_FORMAT")}
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        CRAWLER_ENCRYPTION_KEYS=support.ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=support.BLIND_INDEX_KEY,
        LOG_LEVEL="DEBUG",
    )
    return env


@pytest.fixture
def scrapy_cmd():
    return run_scrapy
