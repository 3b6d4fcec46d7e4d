"""The page's removal views in a real browser (Playwright driving the system Chromium) against the
real API (``python -m crawler.api`` on a database of the test's own), with data seeded through the
real store functions: every listing's removal status with its history, the tasks view (where to go,
Done resumes the flow), and "Is this you?" (yes makes findings and offers their removal, no is
remembered). Scraped values arrive as text and never run."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from playwright.sync_api import expect
from removal_seed import CAPTCHA_TEXT, CAPTCHA_URL, listing, review_candidate, submitted, with_task

import support
from crawler.db.pool import close_pools
from crawler.spider_args import PersonQuery
from crawler.store import removal_flow, removals, scans
from tools.services import child, create_key, free_port, wait_listening

pytestmark = pytest.mark.e2e

USER = "removal-page"
PAYLOAD = '<img src=x onerror="window.__xss=1">Jane Doe'


@pytest.fixture
def service(own_database_url, tmp_path):
    """The API alone (no worker: the statuses the page shows stay as seeded); yields (base URL, key)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_FILE", "LOG_FORMAT", "REDIS_URL")}
    port = free_port()
    env.update(
        DATABASE_URL=own_database_url,
        DATA_DIR=str(tmp_path / "data"),
        CRAWLER_ENCRYPTION_KEYS=support.ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=support.BLIND_INDEX_KEY,
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        LOG_LEVEL="INFO",
    )
    key = create_key(env, USER)
    log = tmp_path / "api.log"
    with child("api", [sys.executable, "-m", "crawler.api"], env, log) as api:
        wait_listening(api, port, "the API", log)
        yield f"http://127.0.0.1:{port}", key


async def seed(url: str, tmp_path) -> dict:
    """Through the store: a scan of USER's with three requested listings (one removed after a
    submission, one waiting for a CAPTCHA task, one just requested) and two review-band candidates."""
    settings = support.store_settings(url, tmp_path)
    settings.set("SCREENSHOTS_DIR", str(tmp_path / "shots"))
    try:
        from api_client import write_listing

        scan_id = await scans.create_scan(settings, PersonQuery("Jane", "Doe", state="IL"), "scan", ["fastpeople"])
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("UPDATE scans SET owner = %s, status = 'completed' WHERE id = %s", (USER, scan_id))
        made = {}
        for site in ("fastpeople", "truepeople", "radaris"):
            finding = write_listing(settings, scan_id, site, listing(f"{site}-{uuid.uuid4().hex[:6]}"))[0]
            made[site] = (await removals.request_removal(settings, USER, finding)).id
        await submitted(settings, made["fastpeople"])
        await removal_flow.mark_removed(settings, made["fastpeople"])
        task_id = await with_task(settings, made["truepeople"])
        yes_id, yes_item = review_candidate(settings, scan_id, "thatsthem", full_name=PAYLOAD, age=44)
        no_id, _ = review_candidate(settings, scan_id, "spa", full_name="Jane Roe")
        return {
            "scan": scan_id,
            "requests": made,
            "task": task_id,
            "yes": yes_id,
            "no": no_id,
            "yes_url": yes_item.listing_url,
        }
    finally:
        await close_pools()


def sql(url, text, *params):
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(text, params).fetchall()


def test_removals_tasks_and_is_this_you_in_the_browser(service, browser_page, own_database_url, tmp_path):
    base, key = service
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API runs an event loop in this thread
        seeded = pool.submit(asyncio.run, seed(own_database_url, tmp_path)).result()
    page, problems = browser_page
    page.goto(base + "/")
    page.fill("#api-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#view-home:not([hidden])")
    # the header counts what waits for the person
    page.wait_for_selector("#tasks-count:not([hidden]):text-is('1')")
    page.wait_for_selector("#reviews-count:not([hidden]):text-is('2')")

    # Removals: every request with its status and history
    page.click("#account a[href='#/removals']")
    page.wait_for_selector("#view-removals:not([hidden]) article.removal")
    requests = seeded["requests"]
    for site, status in (("fastpeople", "removed"), ("truepeople", "needs_human"), ("radaris", "requested")):
        card = page.locator(f"article.removal[data-removal-id='{requests[site]}']")
        assert card.locator("[data-role=status]").text_content() == status
    removed = page.locator(f"article.removal[data-removal-id='{requests['fastpeople']}']")
    removed.locator("details.history summary").click()
    events = removed.locator("tr[data-role=event]")
    assert events.count() == 3
    assert [events.nth(i).locator("td").nth(1).text_content() for i in range(3)] == [
        "requested",
        "requested → submitted",
        "submitted → removed",
    ]
    waiting = page.locator(f"article.removal[data-removal-id='{requests['truepeople']}']")
    assert CAPTCHA_TEXT in waiting.locator("[data-role=task]").text_content()
    page.select_option("#removal-filter", "removed")
    expect(page.locator("article.removal")).to_have_count(1)
    assert page.locator(f"article.removal[data-removal-id='{requests['fastpeople']}']").count() == 1

    # Tasks: what, where, and Done resumes the flow
    page.click("#account a[href='#/tasks']")
    task = page.locator(f"article.task[data-task-id='{seeded['task']}']")
    task.wait_for()
    assert task.locator("[data-role=instructions]").text_content() == CAPTCHA_TEXT
    assert task.locator("[data-role=where] a").get_attribute("href") == CAPTCHA_URL
    assert task.locator("[data-role=kind]").text_content() == "captcha"
    assert task.locator("[data-role=email] code").text_content().startswith("optout+")
    task.locator("button[data-role=done]").click()
    task.wait_for(state="detached")
    page.wait_for_selector("#notice:not([hidden])")
    assert "goes on" in page.text_content("#notice")
    assert page.is_visible("#tasks-empty")
    assert sql(own_database_url, "SELECT done_at IS NOT NULL FROM removal_tasks WHERE id = %s", seeded["task"]) == [
        (True,)
    ]
    assert sql(own_database_url, "SELECT status FROM removal_requests WHERE id = %s", requests["truepeople"]) == [
        ("submitted",)
    ]
    queued = "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'run_optout' AND status = 'todo'"
    assert sql(own_database_url, queued) == [(1,)]

    # Is this you? yes -> findings and a removal; no -> remembered
    page.click("#account a[href='#/reviews']")
    yes_card = page.locator(f"article.review[data-review-id='{seeded['yes']}']")
    yes_card.wait_for()
    assert page.locator("article.review").count() == 2
    name = yes_card.locator("td.value").first
    assert name.text_content() == PAYLOAD and name.evaluate("cell => cell.childElementCount") == 0
    yes_card.locator("button[data-role=yes]").click()
    yes_card.locator("[data-role=outcome]:has-text('added to your findings')").wait_for()
    yes_card.locator("button[data-role=remove]").click()
    yes_card.locator("button[data-role=remove]:text-is('Removal requested')").wait_for()
    requested = sql(
        own_database_url,
        "SELECT count(*) FROM findings WHERE scan_id = %s AND website_id = 'thatsthem' "
        "AND status = 'removal_requested'",
        seeded["scan"],
    )
    assert requested[0][0] >= 2  # name and age
    assert sql(own_database_url, "SELECT count(*) FROM removal_requests WHERE website_id = 'thatsthem'") == [(1,)]

    no_card = page.locator(f"article.review[data-review-id='{seeded['no']}']")
    no_card.locator("button[data-role=no]").click()
    no_card.wait_for(state="detached")
    assert sql(own_database_url, "SELECT owner, website_id, decision FROM listing_reviews ORDER BY website_id") == [
        (USER, "spa", "no"),
        (USER, "thatsthem", "yes"),
    ]
    page.reload()
    page.wait_for_selector("#view-reviews:not([hidden])")
    page.wait_for_selector("#reviews-empty:not([hidden])")  # neither is asked again
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
    assert problems == []
