"""Real crawls rendering the sandbox's JavaScript site in Chromium: no browser process outlives the
crawl (a normal end, a SIGKILL of the crawl, a SIGKILL of the crawl and its driver while Chromium
hangs), contexts are recycled after PLAYWRIGHT_CONTEXT_MAX_PAGES pages with their cookies and
localStorage, and pages are closed when their request fails."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from sandbox.brokers import spa
from sandbox.population import default_population
from support import ROOT, http

pytestmark = pytest.mark.e2e

DEADLINE = 60.0  # seconds: generous, the machine may be busy

SPIDER = """
import json
from pathlib import Path

import scrapy
from scrapy_playwright.page import PageMethod

from crawler.extraction.actions import CLICK_IF_PRESENT


class BrowserTestSpider(scrapy.Spider):
    name = "browser_test"
    custom_settings = {"ITEM_PIPELINES": {}}

    def __init__(self, urls="", progress="", result="", hold_ms="0", fail_every="0", keep="0", **kwargs):
        super().__init__(**kwargs)
        self.urls = json.loads(Path(urls).read_text())
        self.progress, self.result = Path(progress), Path(result)
        self.hold_ms, self.fail_every = int(hold_ms), int(fail_every)
        # one page after another; every other one on a page kept and used again (the screenshot pipeline's way)
        self.keep = keep == "1"
        self.kept = None
        self.outcomes = []

    async def start(self):
        if self.keep:
            yield self.request(0)
            return
        for i in range(len(self.urls)):
            yield self.request(i)

    def request(self, i):
        url = self.urls[i]
        methods = [PageMethod("evaluate", CLICK_IF_PRESENT, "[data-qa-tos-accept]")]
        if self.fail_every and i % self.fail_every == self.fail_every - 1:
            methods.append(PageMethod("wait_for_selector", "#never-there", timeout=300))
        else:
            methods.append(PageMethod("wait_for_selector", "[data-qa-person]"))
        if self.hold_ms:
            methods.append(PageMethod("wait_for_timeout", self.hold_ms))
        meta = {"playwright": True, "playwright_page_methods": methods, "i": i}
        if self.keep and i % 2:
            meta["playwright_include_page"] = True
            if self.kept is not None and not self.kept.is_closed():
                meta["playwright_page"] = self.kept
        return scrapy.Request(url, meta=meta, callback=self.parse, errback=self.failed, dont_filter=True)

    def parse(self, response):
        clicked = response.meta["playwright_page_methods"][0].result
        outcome = {"clicked": clicked, "rendered": "data-qa-person" in response.text}
        if self.keep and response.meta["i"] % 2:
            page = response.meta["playwright_page"]
            outcome["reused"] = page is self.kept
            self.kept = page
        self.outcomes.append(outcome)
        self.progress.write_text(str(len(self.outcomes)))
        if self.keep and response.meta["i"] + 1 < len(self.urls):
            yield self.request(response.meta["i"] + 1)

    def failed(self, failure):
        self.outcomes.append({"failed": failure.type.__name__})
        self.progress.write_text(str(len(self.outcomes)))

    def closed(self, reason):  # a kept page closes with its context when the handler closes
        stats = {k: v for k, v in self.crawler.stats.get_stats().items() if k.startswith("playwright/")}
        self.result.write_text(json.dumps({"outcomes": self.outcomes, "stats": stats}))
"""


def profile_urls(base: str, count: int) -> list[str]:
    paths = [p for p in map(spa.listing_url, default_population().people) if p]
    return [base + path for path in paths[:count]]


class Crawl:
    """A ``scrapy runspider`` of SPIDER in a subprocess of its own session, marked by CRAWL_MARK."""

    def __init__(self, tmp_path: Path, env: dict, urls: list[str], settings: dict | None = None, **spider_args):
        self.mark = uuid.uuid4().hex
        self.progress, self.result = tmp_path / "progress", tmp_path / "result.json"
        self.progress.write_text("0")
        (tmp_path / "urls.json").write_text(json.dumps(urls))
        spider = tmp_path / "browser_test_spider.py"
        spider.write_text(SPIDER)
        command = [sys.executable, "-m", "scrapy", "runspider", str(spider)]
        arguments = {"urls": tmp_path / "urls.json", "progress": self.progress, "result": self.result, **spider_args}
        for key, value in arguments.items():
            command += ["-a", f"{key}={value}"]
        for key, value in (settings or {}).items():
            command += ["-s", f"{key}={value}"]
        self.log = open(tmp_path / "crawl.log", "w")  # noqa: SIM115 - closed in finish()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "CRAWL_MARK": self.mark, "PYTHONPATH": str(ROOT), "LOG_LEVEL": "INFO"},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
        )
        self.seen: dict[int, float] = {}  # every descendant ever seen: pid -> create time

    def pages(self) -> int:
        text = self.progress.read_text().strip()
        return int(text) if text else 0

    def sample(self) -> list[psutil.Process]:
        try:
            found = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for process in found:
            with contextlib.suppress(psutil.NoSuchProcess):
                self.seen.setdefault(process.pid, process.create_time())
        return found

    def wait_rendering(self, pages: int = 1) -> None:
        """Until ``pages`` pages are rendered and Chromium processes run below the crawl."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            chromium = [p for p in self.sample() if "chrom" in safe_name(p)]
            if chromium and self.pages() >= pages:
                return
            assert self.process.poll() is None, self.log_text()
            time.sleep(0.1)
        raise AssertionError(f"no page rendered within {DEADLINE} s:\n{self.log_text()}")

    def finish(self, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self.sample()
            time.sleep(0.1)
        self.stop()
        assert self.process.returncode == 0, self.log_text()
        return json.loads(self.result.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self.log.close()

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()[-4000:]

    def chromium_main(self) -> psutil.Process:
        for process in self.sample():
            command = safe_cmdline(process)
            browser = command and os.path.basename(command[0]) == "chromium"  # not the launcher
            if browser and not any(a.startswith("--type=") for a in command):
                return process
        raise AssertionError("no Chromium browser process below the crawl")

    def left(self) -> list[str]:
        """Processes of this crawl still running: seen below it, or carrying its mark."""
        left = []
        for process in psutil.process_iter(["pid", "create_time", "status"]):
            info = process.info
            if info["status"] == psutil.STATUS_ZOMBIE:
                continue
            ours = self.seen.get(info["pid"]) == info["create_time"] and info["pid"] != self.process.pid
            if not ours:
                try:
                    ours = process.environ().get("CRAWL_MARK") == self.mark
                except (psutil.Error, OSError):
                    ours = False
            if ours:
                left.append(f"{info['pid']} {' '.join(safe_cmdline(process))[:120]}")
        return left

    def wait_none_left(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while (left := self.left()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not left, "left running after the crawl:\n" + "\n".join(left)


def safe_name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.Error:
        return ""


def safe_cmdline(process: psutil.Process) -> list[str]:
    try:
        return process.cmdline()
    except psutil.Error:
        return []


@pytest.fixture
def spa_site(sandbox):
    base = sandbox["spa"]
    reply = http(f"{base}/_sandbox/config", data={"defaults": True, "reset": True, "rate_limit_per_minute": 100000})
    assert reply.status == 200, reply.body
    return base


def test_no_browser_process_is_left_after_a_crawl_ends(spa_site, crawl_env, tmp_path):
    crawl = Crawl(tmp_path, crawl_env, profile_urls(spa_site, 4), hold_ms=300)
    crawl.wait_rendering()
    result = crawl.finish()
    assert [o.get("rendered") for o in result["outcomes"]] == [True] * 4
    crawl.wait_none_left()


def test_no_browser_process_is_left_after_the_crawl_is_sigkilled(spa_site, crawl_env, tmp_path):
    crawl = Crawl(tmp_path, crawl_env, profile_urls(spa_site, 60), hold_ms=500)
    try:
        crawl.wait_rendering(pages=2)
        profile = next(a.split("=", 1)[1] for a in safe_cmdline(crawl.chromium_main()) if "--user-data-dir=" in a)
        crawl.sample()
        os.kill(crawl.process.pid, signal.SIGKILL)  # the crawl alone: Python cannot clean up
        crawl.process.wait()
        crawl.wait_none_left()
        assert not Path(profile).exists()
    finally:
        crawl.stop()


def test_a_hung_chromium_is_killed_when_the_crawl_and_its_driver_are_sigkilled(spa_site, crawl_env, tmp_path):
    """The driver's own clean-up dies with it, and a stopped browser never reads its closed pipe:
    only the launcher (PLAYWRIGHT_PROCESS_GUARD) is left to kill it."""
    crawl = Crawl(tmp_path, crawl_env, profile_urls(spa_site, 60), hold_ms=500)
    try:
        crawl.wait_rendering(pages=2)
        main = crawl.chromium_main()
        main.suspend()  # SIGSTOP: a hung browser
        crawl.sample()
        os.killpg(crawl.process.pid, signal.SIGKILL)  # the crawl's session: Python and the Node driver
        crawl.process.wait()
        crawl.wait_none_left()
    finally:
        crawl.stop()
        kill_seen(crawl)


def kill_seen(crawl: Crawl) -> None:
    """A failed run must not leave a stopped Chromium behind for the next test."""
    for pid, created in crawl.seen.items():
        try:
            process = psutil.Process(pid)
            if process.create_time() == created:
                process.kill()
        except psutil.Error:
            pass


def test_contexts_are_recycled_after_n_pages_and_keep_their_cookies_and_storage(spa_site, crawl_env, tmp_path):
    settings = {"PLAYWRIGHT_CONTEXT_MAX_PAGES": 3, "CONCURRENT_REQUESTS": 1}
    result = Crawl(tmp_path, crawl_env, profile_urls(spa_site, 7), settings).finish()
    stats = result["stats"]
    assert [o.get("rendered") for o in result["outcomes"]] == [True] * 7
    assert stats["playwright/context_count/recycled"] == 2
    assert stats["playwright/context_count"] == 3
    assert stats["playwright/page_count/closed"] == 7
    # the terms modal is accepted once: each new context starts with the cookie and localStorage entry
    assert [o["clicked"] for o in result["outcomes"]] == [True] + [False] * 6


def test_pages_of_failed_requests_are_closed(spa_site, crawl_env, tmp_path):
    settings = {"PLAYWRIGHT_CONTEXT_MAX_PAGES": 0, "CONCURRENT_REQUESTS": 4}
    result = Crawl(tmp_path, crawl_env, profile_urls(spa_site, 8), settings, fail_every=2).finish()
    outcomes, stats = result["outcomes"], result["stats"]
    assert sum(1 for o in outcomes if o.get("failed")) == 4
    assert sum(1 for o in outcomes if o.get("rendered")) == 4
    closed = stats.get("playwright/page_count/closed", 0) + stats.get("playwright/page_count/closed_after_failure", 0)
    assert stats["playwright/page_count"] == 8 == closed


def test_a_context_whose_page_the_spider_keeps_is_recycled_all_the_same(spa_site, crawl_env, tmp_path):
    """The kept page (the screenshot pipeline reuses one) does not hold the retired context open:
    it closes once no download runs on it, and the spider then gets a new page."""
    settings = {"PLAYWRIGHT_CONTEXT_MAX_PAGES": 3, "PLAYWRIGHT_MAX_CONTEXTS": 2}
    result = Crawl(tmp_path, crawl_env, profile_urls(spa_site, 12), settings, keep=1).finish()
    outcomes, stats = result["outcomes"], result["stats"]
    assert [o.get("rendered") for o in outcomes] == [True] * 12
    assert stats["playwright/context_count/recycled"] >= 2
    kept = [o["reused"] for o in outcomes if "reused" in o]
    assert len(kept) == 6 and True in kept and False in kept[1:]
