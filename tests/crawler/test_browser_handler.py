"""What the browser handler aborts, and how the Chromium launcher reads its command line."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from scrapy_playwright.page import PageMethod

from crawler import chromium_launcher
from crawler.browser import LazyPlaywrightDownloadHandler, takes_screenshot

pytestmark = pytest.mark.unit

HEAVY = frozenset({"image", "media", "font"})


def aborted(meta: dict) -> frozenset:
    return LazyPlaywrightDownloadHandler._abort_types(SimpleNamespace(abort_types=HEAVY), meta)


def test_heavy_resources_are_aborted_for_ordinary_pages():
    assert aborted({"playwright": True, "playwright_page_methods": [PageMethod("wait_for_selector", "h1")]}) == HEAVY


def test_pages_that_take_a_screenshot_load_everything():
    shot = [PageMethod("wait_for_load_state", "networkidle"), PageMethod("screenshot", full_page=True)]
    assert takes_screenshot({"playwright_page_methods": shot})
    assert aborted({"playwright_page_methods": shot}) == frozenset()
    assert aborted({"playwright_page_methods": {"shot": shot[1]}}) == frozenset()
    assert aborted({"screenshot": True}) == frozenset()


def test_a_request_can_opt_out_or_choose_its_own_types():
    assert aborted({"playwright_abort_resources": False}) == frozenset()
    assert aborted({"playwright_abort_resources": ["image"]}) == {"image"}


def test_the_launcher_takes_its_own_flags_and_passes_the_rest_to_chromium():
    chromium, parent, rest = chromium_launcher.parse(
        ["--headless", "--crawler-chromium=/opt/chromium", "--user-data-dir=/tmp/x", "--crawler-parent-pid=42"]
    )
    assert (chromium, parent, rest) == ("/opt/chromium", 42, ["--headless", "--user-data-dir=/tmp/x"])


def test_the_launcher_removes_only_playwrights_temporary_profile():
    assert chromium_launcher.temporary_profile(["--user-data-dir=/tmp/playwright_chromiumdev_profile-ab12"]) == (
        "/tmp/playwright_chromiumdev_profile-ab12"
    )
    assert chromium_launcher.temporary_profile(["--user-data-dir=/home/me/.config/chromium"]) is None
