"""The scans API in process (httpx over ASGI) on the session's database, real Redis where a test
asks for it."""

from __future__ import annotations

import uuid

import pytest
from api_client import Api
from scrapy.utils.project import get_project_settings

from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, REDIS_URL


@pytest.fixture
def api_settings(database_url, tmp_path):
    settings = get_project_settings().copy()
    settings.setdict(
        {
            "DATABASE_URL": database_url,
            "DATA_DIR": str(tmp_path / "data"),
            "SCREENSHOTS_DIR": str(tmp_path / "screenshots"),
            "CRAWLER_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
            "CRAWLER_BLIND_INDEX_KEY": BLIND_INDEX_KEY,
            "REDIS_URL": "",
            "API_RATE_LIMIT_PER_MINUTE": 100_000,
            "API_RATE_LIMIT_BURST": 10_000,
            "API_STATS_CACHE_SECONDS": 0,
            "API_EVENTS_POLL_SECONDS": 0.2,
        },
        priority="cmdline",
    )
    return settings


@pytest.fixture
def redis_settings(api_settings, redis_prefix):
    """The same with the real Redis: rate limits and scan events go through it."""
    settings = api_settings.copy()
    settings.setdict({"REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": f"{redis_prefix}{uuid.uuid4().hex[:6]}:"}, "cmdline")
    return settings


@pytest.fixture
async def api(api_settings):
    client = Api(api_settings)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_api(redis_settings):
    client = Api(redis_settings)
    yield client
    await client.aclose()


# a page in the system Chromium; its list collects page errors and CSP violations (the page must have none)
BROWSER_STEP_TIMEOUT_MS = 60_000


@pytest.fixture
def browser_page():
    from playwright.sync_api import sync_playwright

    from crawler.settings import PLAYWRIGHT_LAUNCH_OPTIONS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**PLAYWRIGHT_LAUNCH_OPTIONS)
        try:
            page = browser.new_context().new_page()
            page.set_default_timeout(BROWSER_STEP_TIMEOUT_MS)
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on(
                "console",
                lambda message: (
                    problems.append(f"console {message.type}: {message.text}")
                    if message.type == "error" and "Content Security Policy" in message.text
                    else None
                ),
            )
            yield page, problems
        finally:
            browser.close()
