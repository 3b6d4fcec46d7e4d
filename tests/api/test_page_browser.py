"""The scans page in a real browser (Playwright driving the system Chromium) against the real service:
``python -m crawler.api`` (uvicorn serving create_app) and ``python -m crawler.worker`` on a database of
the test's own, a key from ``python -m crawler.api keys create``, and the sandbox's broker sites.

The flow a user goes through: sign in, start a scan of the sandbox person whose thatsthem listing carries an
HTML/JS payload in its name, watch it complete live, see the findings, open a screenshot at full size,
request a removal and see the status change, sign out. The payload must arrive as text (visible, literal)
and never run: ``window.__xss`` stays undefined and no element comes out of it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import psycopg
import pytest

import support
from sandbox.brokers import thatsthem
from sandbox.population import default_population
from tools.services import scans_service

pytestmark = pytest.mark.e2e

# the crawl's own launch options: the system Chromium and its flags (crawler/settings.py)
SCAN_TIMEOUT_MS = 240_000  # a busy 2-core machine: the crawl, a Chromium screenshot, the worker's polling
STEP_TIMEOUT_MS = 60_000
PERSON = default_population().get(thatsthem.INJECTED_PERSON)
PAYLOAD = thatsthem.INJECTION_PAYLOAD


@pytest.fixture
def service(own_database_url, sandbox, redis_prefix, tmp_path):
    """The API and a worker on the test's own database; yields (base URL, key, database URL)."""
    assert support.http(f"{sandbox['thatsthem']}/_sandbox/config", data={}).status == 200  # a fresh rate window
    env = {k: v for k, v in os.environ.items() if k not in ("LOG_FILE", "LOG_FORMAT")}
    env.update(
        DATABASE_URL=own_database_url,
        DATA_DIR=str(tmp_path / "data"),
        CRAWLER_ENCRYPTION_KEYS=support.ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=support.BLIND_INDEX_KEY,
        REDIS_URL=support.REDIS_URL,
        REDIS_KEY_PREFIX=redis_prefix + "page:",
        SITES_BASE_URLS=f"thatsthem={sandbox['thatsthem']}",
        LOG_LEVEL="INFO",
    )
    logs = tmp_path / "logs"
    with scans_service(env, logs, user="page-tester") as running:
        yield running.api, running.key, own_database_url, logs


def logs_tail(logs: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(logs.glob("*.log")))


def sign_in(page, base: str, key: str) -> None:
    response = page.goto(base + "/")
    policy = response.headers.get("content-security-policy", "")
    for directive in ("default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"):
        assert directive in policy, policy
    page.fill("#api-key", "not-a-key")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:not([hidden])")
    assert "refused" in page.text_content("#signin-error")
    page.fill("#api-key", key)
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#view-home:not([hidden])")
    assert page.evaluate("sessionStorage.length") == 1


def start_scan(page) -> str:
    form = "#scan-form"
    for name, value in (
        ("first_name", PERSON.first_name),
        ("middle_name", PERSON.middle_name),
        ("last_name", PERSON.last_name),
        ("city", PERSON.current.city),
        ("state", PERSON.current.state),
        ("age", str(PERSON.age)),
    ):
        page.fill(f"{form} input[name={name}]", value)
    for box in page.query_selector_all(f"{form} input[name=sites]"):
        box.set_checked(box.get_attribute("value") == "thatsthem")
    page.select_option(f"{form} select[name=priority]", "high")
    # every status the scan page shows, in order: the page must follow the scan live, without a reload
    page.evaluate(
        """() => {
            const badge = document.querySelector('#scan-status');
            window.seenStatuses = [];
            new MutationObserver(() => {
                const last = window.seenStatuses[window.seenStatuses.length - 1];
                if (badge.textContent && badge.textContent !== last) window.seenStatuses.push(badge.textContent);
            }).observe(badge, {childList: true, characterData: true, subtree: true});
        }"""
    )
    page.click(f"{form} button[type=submit]")
    page.wait_for_url(re.compile(r"#/scans/[0-9a-f-]{36}$"))
    return page.url.rsplit("/", 1)[1]


def assert_payload_inert(page) -> None:
    """The payload is a text node in the findings, literal and visible, and nothing of it ran or was built."""
    cells = page.locator("#findings td.value", has_text="window.__xss")
    assert cells.count() == 1
    text = cells.first.text_content()
    assert PAYLOAD in text and PERSON.last_name in text
    assert cells.first.evaluate("cell => cell.childElementCount") == 0  # text only, no child element
    assert cells.first.is_visible()
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"], img[onerror], [onerror]').length") == 0
    scripts = page.evaluate("[...document.scripts].map(s => s.getAttribute('src'))")
    assert len(scripts) == 1 and scripts[0].startswith("/static/js/app.js"), scripts


def test_sign_in_scan_watch_findings_screenshot_removal_and_inert_payload(service, browser_page):
    base, key, database_url, logs = service
    page, problems = browser_page
    sign_in(page, base, key)
    scan_id = start_scan(page)

    try:
        page.wait_for_selector("#scan-status.status-completed", timeout=SCAN_TIMEOUT_MS)
    except Exception as timeout:
        raise AssertionError(
            f"scan did not complete on the page: {page.text_content('#scan-status')}\n" + logs_tail(logs)
        ) from timeout
    seen = page.evaluate("window.seenStatuses")
    assert seen[-1] == "completed" and set(seen[:-1]) & {"pending", "running"}, seen
    row = page.locator("#progress-rows tr[data-site=thatsthem]")
    assert row.locator("td.col-outcome").text_content() == "found"
    assert int(row.locator("td.col-accepted").text_content()) >= 1

    listing = page.locator("#findings section.site[data-site=thatsthem] article.listing").first
    listing.wait_for()
    assert listing.locator("[data-role=status]").text_content() == "found"
    types = listing.locator(".types").text_content()
    assert "name" in types and "age" in types
    assert_payload_inert(page)
    assert page.locator("svg.chart g.bar[data-site=thatsthem] rect").count() >= 2  # stacked by data type

    # the screenshot: a thumbnail fetched with the key, opened at full size
    page.wait_for_function(
        "() => { const img = document.querySelector('#findings img.thumb');"
        " return img && img.complete && img.naturalWidth > 0; }",
        timeout=STEP_TIMEOUT_MS,
    )
    assert page.eval_on_selector("#findings img.thumb", "img => img.src").startswith("blob:")
    listing.locator("button.thumb-button").click()
    page.wait_for_selector("#shot-dialog[open]")
    page.wait_for_function("() => document.querySelector('#shot-full').naturalWidth > 0")
    assert page.evaluate("document.querySelector('#shot-full').naturalWidth") >= 320
    page.keyboard.press("Escape")
    page.wait_for_selector("#shot-dialog:not([open])", state="attached")

    # removal: the listing's status changes, on the page and in the database
    listing_id = listing.get_attribute("data-listing-id")
    listing.locator("button[data-role=remove]").click()
    page.wait_for_selector(
        f"article.listing[data-listing-id='{listing_id}'] [data-role=status]:text-is('removal_requested')"
    )
    assert page.locator(f"article.listing[data-listing-id='{listing_id}'] button[data-role=remove]").is_disabled()
    with psycopg.connect(database_url) as conn:
        statuses = {
            row[0]
            for row in conn.execute(
                "SELECT f.status FROM findings f JOIN findings g ON (f.scan_id, f.website_id, f.listing_url_index)"
                " = (g.scan_id, g.website_id, g.listing_url_index) WHERE g.id = %s",
                (int(listing_id),),
            )
        }
    assert statuses == {"removal_requested"}
    assert_payload_inert(page)  # re-rendered after the removal: still text

    # the scan list shows it; signing out forgets the key
    page.click("a.brand")
    page.wait_for_selector(f"#scan-rows tr[data-scan-id='{scan_id}']")
    assert page.text_content(f"#scan-rows tr[data-scan-id='{scan_id}'] .badge") == "completed"
    page.click("#sign-out")
    page.wait_for_selector("#view-signin:not([hidden])")
    assert page.evaluate("sessionStorage.length") == 0
    assert page.locator("#findings *").count() == 0
    assert not problems, problems


# --- the shell and the scripts, without a browser ---------------------------------------------------------

STATIC = Path(__file__).resolve().parents[2] / "crawler" / "api" / "static"
HTML_SINKS = re.compile(r"\.(innerHTML|outerHTML|insertAdjacentHTML)\b|document\.write|\beval\(|new Function\(")


def test_the_shell_needs_no_key_sends_a_strict_policy_and_has_no_inline_code():
    from fastapi.testclient import TestClient

    from crawler.api.app import create_app
    from crawler.api.page import enabled_sites

    client = TestClient(create_app())
    reply = client.get("/")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    policy = {d.split()[0]: d.split()[1:] for d in reply.headers["content-security-policy"].split("; ")}
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert policy["img-src"] == ["'self'", "blob:", "data:"] and policy["frame-ancestors"] == ["'none'"]
    html = reply.text
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert len(scripts) == 1 and 'src="/static/js/app.js' in scripts[0][0] and not scripts[0][1].strip()
    assert re.search(r"<[^>]+\s(on\w+|style)=", html) is None and "<style" not in html  # no inline handler or style
    boxes = re.findall(r'name="sites" value="([^"]+)"', html)
    assert boxes == [site for site, _ in enabled_sites()] and "thatsthem" in boxes
    script = client.get(re.search(r'src="(/static/js/app\.js[^"]*)"', html)[1])
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_no_script_writes_markup():
    """Values reach the DOM as text only: no HTML sink (innerHTML and friends), no eval, in any module."""
    modules = sorted(STATIC.rglob("*.js"))
    assert len(modules) >= 5
    code = {p.name: re.sub(r"//.*", "", re.sub(r"/\*.*?\*/", "", p.read_text(), flags=re.S)) for p in modules}
    assert {name: HTML_SINKS.findall(text) for name, text in code.items() if HTML_SINKS.search(text)} == {}
    assert "textContent" in code["dom.js"] and "createElementNS" in code["dom.js"]
