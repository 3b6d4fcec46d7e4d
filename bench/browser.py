"""Memory and speed of browser-rendered crawling: our handler vs stock scrapy-playwright.

    .venv/bin/python bench/browser.py [--pages 1000] [--concurrency 8] [--shots-every 10]

Each set-up renders the same --pages distinct profile pages of the sandbox's JavaScript
site (``spa``: an empty HTML shell, the app script, the terms modal clicked, the profile
fetched from its JSON API), with the site's detail actions, and takes a full-page
screenshot on every --shots-every'th page. The crawl process runs under ``scrapy
runspider``; this script samples, every 0.5 s, the RSS of that process and of all its
descendants (the Playwright driver, the launcher, every Chromium process), summed.

- baseline: scrapy-playwright's own ScrapyPlaywrightDownloadHandler, its defaults
  (one default context for the whole crawl, no resource aborts), the same Chromium
- ours:     crawler.browser.LazyPlaywrightDownloadHandler with the project's settings
  (contexts recycled, resources aborted except for screenshots, the launcher)

Both render at most --concurrency pages at once (CONCURRENT_REQUESTS and pages per context).
Pages/s counts from the first to the last rendered page (browser start-up and shutdown
are left out). RSS "at page 100" is the first sample once 100 pages were rendered; "at
the end" the last sample before the last 2% of pages. The last line is the headline:
``browser: rss ratio R; pages/s ratio P`` with R = ours end / ours page-100 RSS (goal <= 1.2)
and P = ours pages/s / baseline pages/s (goal >= 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import scrapy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DETAIL_ACTIONS = [
    {"click": "[data-qa-tos-accept]", "optional": True},
    {"wait_for": "[data-qa-person], [data-qa-error]"},
]
STOCK_HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
SAMPLE_SECONDS = 0.5


class BenchBrowserSpider(scrapy.Spider):
    """Renders every URL of ``urls`` (a JSON file); writes the count rendered so far to ``progress``."""

    name = "bench_browser"
    custom_settings = {"ITEM_PIPELINES": {}}

    def __init__(self, urls: str = "", progress: str = "", result: str = "", shots_every: str = "10", **kwargs):
        super().__init__(**kwargs)
        self.urls = json.loads(Path(urls).read_text())
        self.progress, self.result = progress, result
        self.shots_every = int(shots_every)
        self.rendered = self.failed = self.shots = 0
        self.times: list[float] = []

    async def start(self):
        from scrapy_playwright.page import PageMethod

        from crawler.extraction.actions import page_methods

        for i, url in enumerate(self.urls):
            methods = page_methods(DETAIL_ACTIONS, {})
            shot = self.shots_every > 0 and i % self.shots_every == 0
            if shot:
                methods.append(PageMethod("screenshot", full_page=True, type="png"))
            yield scrapy.Request(
                url,
                callback=self.parse,
                errback=self.failure,
                meta={"playwright": True, "playwright_page_methods": methods, "shot": shot},
                dont_filter=True,
            )

    def parse(self, response):
        if "data-qa-person" in response.text:
            self.rendered += 1
        else:
            self.failed += 1
        if response.meta["shot"]:
            png = response.meta["playwright_page_methods"][-1].result
            self.shots += bool(png and png.startswith(b"\x89PNG"))
        self.tick()

    def failure(self, failure):
        self.failed += 1
        self.tick()

    def tick(self) -> None:
        self.times.append(time.monotonic())
        Path(self.progress).write_text(str(len(self.times)))

    def closed(self, reason):
        stats = self.crawler.stats.get_stats()
        keep = {k: v for k, v in stats.items() if k.startswith("playwright/") and "resource_type" not in k}
        Path(self.result).write_text(
            json.dumps(
                {
                    "rendered": self.rendered,
                    "failed": self.failed,
                    "shots": self.shots,
                    "seconds": self.times[-1] - self.times[0] if len(self.times) > 1 else 0.0,
                    "stats": {k: v for k, v in keep.items() if isinstance(v, int | float)},
                }
            )
        )


def spider_file(workdir: Path) -> str:
    """runspider puts the file's directory first on sys.path (bench/middlewares.py would shadow the
    project's middlewares package): a one-line module in a temporary directory."""
    path = workdir / "bench_browser_spider.py"
    path.write_text("from bench.browser import BenchBrowserSpider\n\n\nclass Spider(BenchBrowserSpider):\n    pass\n")
    return str(path)


def tree_rss(pid: int) -> tuple[int, int]:
    """(summed RSS in bytes, process count) of ``pid`` and all its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    total = count = 0
    for process in processes:
        try:
            total += process.memory_info().rss
            count += 1
        except psutil.NoSuchProcess:
            pass
    return total, count


def run(name: str, spa: str, urls: list[str], args, env: dict, settings: dict) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-browser-{name}-"))
    (workdir / "urls.json").write_text(json.dumps(urls))
    progress, result = workdir / "progress", workdir / "result.json"
    progress.write_text("0")
    command = [sys.executable, "-m", "scrapy", "runspider", spider_file(workdir)]
    for key, value in {"urls": workdir / "urls.json", "progress": progress, "result": result}.items():
        command += ["-a", f"{key}={value}"]
    command += ["-a", f"shots_every={args.shots_every}"]
    for key, value in settings.items():
        command += ["-s", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
    samples: list[tuple[int, int, int]] = []  # (pages, rss, processes)
    with open(workdir / "crawl.log", "w") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            while proc.poll() is None:
                rss, count = tree_rss(proc.pid)
                text = progress.read_text().strip()  # empty while the spider rewrites it
                pages = int(text) if text else (samples[-1][0] if samples else 0)
                if rss:
                    samples.append((pages, rss, count))
                time.sleep(SAMPLE_SECONDS)
        finally:
            if proc.poll() is None:  # interrupted: the crawl's launcher takes Chromium with it
                proc.kill()
                proc.wait()
    if proc.returncode or not result.exists():
        tail = (workdir / "crawl.log").read_text()[-3000:]
        raise SystemExit(f"{name}: the crawl failed ({proc.returncode}):\n{tail}")
    outcome = json.loads(result.read_text())
    total = len(urls)
    at_100 = next((s for s in samples if s[0] >= min(100, total)), samples[-1])
    before_end = [s for s in samples if s[0] < total * 0.98] or samples
    at_end = before_end[-1]
    outcome.update(
        pages_per_second=total / outcome["seconds"] if outcome["seconds"] else 0.0,
        rss_100=at_100[1],
        rss_end=at_end[1],
        rss_end_pages=at_end[0],
        rss_peak=max(s[1] for s in samples),
        processes=max(s[2] for s in samples),
    )
    return outcome


def person_urls(spa: str, pages: int, people: int) -> list[str]:
    from sandbox.brokers import spa as site
    from sandbox.population import default_population

    paths = [p for p in map(site.listing_url, default_population(size=people).people) if p]
    if len(paths) < pages:
        raise SystemExit(f"only {len(paths)} listed profiles among {people} people: raise --people")
    return [spa + path for path in paths[:pages]]


def main() -> None:
    from sandbox.launch import running
    from tests.support import http

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--shots-every", type=int, default=10)
    parser.add_argument("--only", choices=("baseline", "ours"), help="one set-up (development)")
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    people = max(2000, int(args.pages * 1.6))
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_FILE", "LOG_FORMAT")}
    env.update(
        DATABASE_URL=args.database_url,
        RATELIMIT_ENABLED="false",
        CIRCUIT_ENABLED="false",
        LOG_LEVEL="INFO",
        DATA_DIR=str(ROOT / ".data"),
        PYTHONPATH=str(ROOT),
    )
    common = {
        "CONCURRENT_REQUESTS": args.concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": args.concurrency,
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": args.concurrency,
    }
    setups = {
        # stock: its handler for both schemes (one default context for every page, nothing aborted)
        "baseline": {**common, "DOWNLOAD_HANDLERS": {"http": STOCK_HANDLER, "https": STOCK_HANDLER}},
        "ours": common,
    }
    results = {}
    with running(["--free-ports", "--only", "spa", "--people", str(people)], timeout=60) as urls:
        spa = urls["spa"]
        pages = person_urls(spa, args.pages, people)
        for name, settings in setups.items():
            if args.only and name != args.only:
                continue
            reply = http(
                f"{spa}/_sandbox/config", data={"defaults": True, "reset": True, "rate_limit_per_minute": 10**7}
            )
            assert reply.status == 200, reply.body
            results[name] = run(name, spa, pages, args, env, settings)
    mib = 1024 * 1024
    print(
        f"browser bench: {args.pages} spa profile pages rendered in Chromium, screenshot every {args.shots_every}th, "
        f"{args.concurrency} pages at once; {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}"
    )
    for name, r in results.items():
        extra = {k: r["stats"].get(f"playwright/{k}", 0) for k in ("context_count", "request_count/aborted")}
        print(
            f"  {name:8s} {r['pages_per_second']:6.1f} pages/s  rss@100 {r['rss_100'] / mib:6.0f} MiB  "
            f"rss@end {r['rss_end'] / mib:6.0f} MiB (page {r['rss_end_pages']})  peak {r['rss_peak'] / mib:6.0f} MiB  "
            f"end/100 {r['rss_end'] / r['rss_100']:.2f}  processes {r['processes']}  rendered {r['rendered']}"
            f"  failed {r['failed']}  screenshots {r['shots']}  contexts {extra['context_count']}"
            f"  aborted {extra['request_count/aborted']}"
        )
    if "ours" in results:
        ours = results["ours"]
        base = results.get("baseline")
        speed = ours["pages_per_second"] / base["pages_per_second"] if base else float("nan")
        print(f"browser: rss ratio {ours['rss_end'] / ours['rss_100']:.2f}; pages/s ratio {speed:.2f}")


if __name__ == "__main__":
    main()
