"""The page's Heals view in a real browser (Playwright driving the system Chromium) against the real API
served over HTTP on a database of the test's own, with two quarantined heals recorded by
crawler.healing.versions and listings held under each: an operator sees them with their diff (a selector
that is markup stays text), accepts one (its held findings become findings) and rejects the other (they are
deleted); a scan owner's key sees no Heals link and is told the view is for operators.

The API runs in a thread (uvicorn serving create_app with API_OPERATORS in its settings) rather than as
``python -m crawler.api``: the operators list is a setting, given here without the environment."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
import uvicorn
from heal_seed import PAYLOAD_SELECTOR, SITE, findings_of, held_rows, hold, quarantined
from removal_seed import listing

from crawler.api.app import create_app
from crawler.db.pool import close_pools
from crawler.spider_args import PersonQuery
from crawler.store import scans
from crawler.store.keys import create_key
from tools.services import free_port

pytestmark = pytest.mark.e2e

OPERATOR, OWNER = "heal-page-operator", "heal-page-owner"
START_TIMEOUT = 60.0


@pytest.fixture
def service(api_settings, own_database_url):
    """The API on a free port; yields (base URL, settings, {user: key})."""
    settings = api_settings.copy()
    settings.setdict({"DATABASE_URL": own_database_url, "API_OPERATORS": OPERATOR}, "cmdline")
    keys = {user: create_key(settings, user) for user in (OPERATOR, OWNER)}
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="heals-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", settings, keys
    finally:
        server.should_exit = True
        thread.join(30)


async def seed(settings) -> dict:
    """A scan of OWNER's with two listings, each held under a quarantined heal of its own; the first heal builds
    on a quarantined one (holding nothing) that accepting it accepts too."""
    from api_client import write_listing

    url = settings["DATABASE_URL"]
    try:
        scan_id = await scans.create_scan(settings, PersonQuery("Jane", "Doe", state="IL"), "scan", [SITE])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE scans SET owner = %s, status = 'completed' WHERE id = %s", (OWNER, scan_id))
        made = {"scan": scan_id, "ancestor": await quarantined(url)}
        for name, n, selector in (("accept", 1, PAYLOAD_SELECTOR), ("reject", 2, None)):
            ids = write_listing(settings, scan_id, SITE, listing(n))
            parent = made["ancestor"] if name == "accept" else None
            version = await quarantined(url, selector=selector, parent=parent)
            hold(url, ids, version)
            made[name] = (version, len(ids))
        return made
    finally:
        await close_pools()


def sign_in(page, base: str, key: str) -> None:
    page.goto(base + "/")
    page.fill("#api-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#view-home:not([hidden])")


def test_an_operator_reviews_heals_with_their_diff_and_accepts_or_rejects(service, browser_page):
    base, settings, keys = service
    url = settings["DATABASE_URL"]
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs an event loop in this thread
        seeded = pool.submit(asyncio.run, seed(settings)).result()
    (accepted, accepted_held), (rejected, rejected_held) = seeded["accept"], seeded["reject"]
    ancestor = seeded["ancestor"]
    page, problems = browser_page

    sign_in(page, base, keys[OPERATOR])
    page.wait_for_selector("#heals-link:not([hidden]) #heals-count:not([hidden]):text-is('3')")
    page.click("#heals-link")
    page.wait_for_selector("#view-heals:not([hidden]) article.heal")
    assert page.locator("article.heal").count() == 3
    card = page.locator(f"article.heal[data-heal-id='{accepted.id}']")
    assert card.locator("[data-role=status]").text_content() == "quarantined"
    assert "detail.age" in card.locator("[data-role=facts]").text_content()
    assert f"{accepted_held} held findings waiting" in card.locator("[data-role=facts]").text_content()
    diff = card.locator("pre[data-role=diff]")
    assert diff.text_content().startswith(f"--- spiders/sites/{SITE}.yaml")
    added = diff.locator("span.add", has_text="h2.age")
    assert added.count() == 1 and PAYLOAD_SELECTOR in added.text_content()  # the markup, as text
    assert diff.locator("span.del", has_text="years old").count() == 1
    assert diff.evaluate("pre => pre.querySelectorAll(':not(span)').length") == 0

    card.locator("button[data-role=accept]").click()
    card.locator("[data-role=outcome]:text-is('accepted: 2 held findings released')").wait_for()
    assert card.locator("[data-role=status]").text_content() == "active"
    assert card.locator("button").count() == 0
    # the heal it built on was accepted with it (and superseded by it)
    built_on = page.locator(f"article.heal[data-heal-id='{ancestor.id}']")
    built_on.locator(f"[data-role=outcome]:text-is('superseded with heal {accepted.id}')").wait_for()
    assert built_on.locator("button").count() == 0
    page.wait_for_selector("#heals-count:text-is('1')")
    assert held_rows(url, accepted) == 0 and findings_of(url, seeded["scan"]) == accepted_held

    other = page.locator(f"article.heal[data-heal-id='{rejected.id}']")
    other.locator("button[data-role=reject]").click()
    other.locator("[data-role=outcome]:text-is('rejected: 2 held findings deleted')").wait_for()
    assert other.locator("[data-role=status]").text_content() == "rejected"
    assert held_rows(url, rejected) == 0 and findings_of(url, seeded["scan"]) == accepted_held
    assert rejected_held == 2
    with psycopg.connect(url, autocommit=True) as conn:
        decided = conn.execute("SELECT id, status, decided_by FROM site_definition_versions ORDER BY id").fetchall()
    assert decided == [
        (ancestor.id, "superseded", OPERATOR),
        (accepted.id, "active", OPERATOR),
        (rejected.id, "rejected", OPERATOR),
    ]

    page.reload()
    page.wait_for_selector("#view-heals:not([hidden]) #heals-empty:not([hidden])")
    assert page.is_hidden("#heals-count")

    # a scan owner's key: no link, and the view says it is for operators
    page.click("#sign-out")
    sign_in(page, base, keys[OWNER])
    page.goto(base + "/#/heals")
    page.wait_for_selector("#view-heals:not([hidden]) #heals-forbidden:not([hidden])")
    assert page.is_hidden("#heals-link")
    assert page.locator("article.heal").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert problems == []
