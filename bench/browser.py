"""Memory and speed of browser-rendered crawling: our handler vs stock scrapy-playwright.

    .venv/bin/python bench/browser.py [--pages 1000] [--concurrency 8] [--shots-every 10]

Each set-up renders the same --pages distinct profile pages of the sandbox's JavaScript
site (``spa``: an empty HTML shell, the app script, the terms modal clicked, the profile
fetched from its JSON API), with the site's detail actions, and takes a full-page
screenshot on every --shots-every'th page. The crawl process runs under ``scrapy
runspider``; this script samples, every 0.5 s, the RSS of that process and of all its
descendants (the Playwright driver, the launcher, every Chromium process), summed (and
their PSS, which counts a page shared by several Chromium processes once).

- baseline: scrapy-playwright's own ScrapyPlaywrightDownloadHandler, its defaults
  (one default context for the whole crawl, no resource aborts), the same Chromium
- ours:     crawler.browser.LazyPlaywrightDownloadHandler with the project's settings
  (contexts recycled, resources aborted except for screenshots, the launcher); the spa
  site loads no images, media or fonts, so "aborted" stays 0 here

The two crawls run at the same time, on the same pages, each rendering at most --concurrency
pages at once (CONCURRENT_REQUESTS and pages per context): on a shared machine whose load
drifts, running one after the other would favour whichever ran in the quieter minutes.
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
from dataclasses import dataclass, field
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


def role(process, crawl_pid: int) -> str:
    if process.pid == crawl_pid:
        return "crawl"
    name = process.name()
    return "driver" if name.startswith("node") else "chromium"  # the launcher counts with the browser it runs


@dataclass
class Sample:
    pages: int
    rss: int = 0  # bytes, summed over the process tree
    pss: int = 0  # proportional set size: shared pages divided among the processes that map them
    processes: int = 0
    by_role: dict = field(default_factory=dict)  # role -> RSS bytes
    cpu: dict = field(default_factory=dict)  # role -> CPU seconds of the processes alive now


def tree_sample(pid: int, pages: int) -> Sample | None:
    """RSS (and PSS) of ``pid`` and all its descendants: the crawl, the driver, the launcher, Chromium."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return None
    sample = Sample(pages)
    for process in processes:
        try:
            memory = process.memory_full_info()
            times = process.cpu_times()
            kind = role(process, pid)
        except psutil.Error:
            continue
        sample.rss += memory.rss
        sample.pss += memory.pss
        sample.processes += 1
        sample.by_role[kind] = sample.by_role.get(kind, 0) + memory.rss
        sample.cpu[kind] = sample.cpu.get(kind, 0.0) + times.user + times.system
    return sample


class CrawlRun:
    """One set-up's crawl (``scrapy runspider`` in a subprocess) and its memory samples."""

    def __init__(self, name: str, urls: list[str], args, env: dict, settings: dict):
        self.name, self.total = name, len(urls)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"bench-browser-{name}-"))
        (self.workdir / "urls.json").write_text(json.dumps(urls))
        self.progress, self.result = self.workdir / "progress", self.workdir / "result.json"
        self.progress.write_text("0")
        command = [sys.executable, "-m", "scrapy", "runspider", spider_file(self.workdir)]
        spider_args = {"urls": self.workdir / "urls.json", "progress": self.progress, "result": self.result}
        for key, value in {**spider_args, "shots_every": args.shots_every}.items():
            command += ["-a", f"{key}={value}"]
        for key, value in settings.items():
            command += ["-s", f"{key}={value if isinstance(value, str) else json.dumps(value)}"]
        self.samples: list[Sample] = []
        self.log = open(self.workdir / "crawl.log", "w")  # noqa: SIM115 - closed in outcome()/kill()
        self.proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=self.log)

    def running(self) -> bool:
        return self.proc.poll() is None

    def sample(self) -> None:
        text = self.progress.read_text().strip()  # empty while the spider rewrites it
        pages = int(text) if text else (self.samples[-1].pages if self.samples else 0)
        if sample := tree_sample(self.proc.pid, pages):
            self.samples.append(sample)

    def kill(self) -> None:
        if self.running():  # interrupted: the crawl's launcher takes Chromium with it
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def outcome(self) -> dict:
        self.kill()
        if self.proc.returncode or not self.result.exists():
            tail = (self.workdir / "crawl.log").read_text()[-3000:]
            raise SystemExit(f"{self.name}: the crawl failed ({self.proc.returncode}):\n{tail}")
        outcome = json.loads(self.result.read_text())
        samples, total = self.samples, self.total
        at_100 = next((s for s in samples if s.pages >= min(100, total)), samples[-1])
        at_end = ([s for s in samples if s.pages < total * 0.98] or samples)[-1]
        outcome.update(
            pages_per_second=total / outcome["seconds"] if outcome["seconds"] else 0.0,
            at_100=at_100,
            at_end=at_end,
            rss_peak=max(s.rss for s in samples),
            processes=max(s.processes for s in samples),
            cpu=max(samples, key=lambda s: sum(s.cpu.values())).cpu,
        )
        return outcome


def run_together(runs: list[CrawlRun]) -> None:
    try:
        while any(run.running() for run in runs):
            for run in runs:
                if run.running():
                    run.sample()
            time.sleep(SAMPLE_SECONDS)
    finally:
        for run in runs:
            run.kill()


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
    with running(["--free-ports", "--only", "spa", "--people", str(people)], timeout=60) as urls:
        spa = urls["spa"]
        pages = person_urls(spa, args.pages, people)
        reply = http(f"{spa}/_sandbox/config", data={"defaults": True, "reset": True, "rate_limit_per_minute": 10**7})
        assert reply.status == 200, reply.body
        # at the same time: both see the same load (the machine is shared, and its load drifts)
        runs = [CrawlRun(name, pages, args, env, s) for name, s in setups.items() if args.only in (None, name)]
        run_together(runs)
        results = {run.name: run.outcome() for run in runs}
    mib = 1024 * 1024
    print(
        f"browser bench: {args.pages} spa profile pages rendered in Chromium, screenshot every {args.shots_every}th, "
        f"{args.concurrency} pages at once; {os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}"
    )
    for name, r in results.items():
        a, e = r["at_100"], r["at_end"]
        extra = {k: r["stats"].get(f"playwright/{k}", 0) for k in ("context_count", "request_count/aborted")}
        roles = " ".join(
            f"{k} {a.by_role.get(k, 0) / mib:.0f}->{e.by_role.get(k, 0) / mib:.0f}"
            for k in ("crawl", "driver", "chromium")
        )
        cpu = " ".join(f"{k} {v:.0f}" for k, v in sorted(r["cpu"].items()))
        print(
            f"  {name:8s} {r['pages_per_second']:5.1f} pages/s  RSS page 100 {a.rss / mib:5.0f} MiB, page {e.pages} "
            f"{e.rss / mib:5.0f} MiB ({e.rss / a.rss:.2f}), peak {r['rss_peak'] / mib:.0f}; PSS {a.pss / mib:.0f} -> "
            f"{e.pss / mib:.0f} MiB ({e.pss / a.pss:.2f})\n"
            f"           RSS MiB by process: {roles}; CPU s: {cpu}; processes {r['processes']}; rendered "
            f"{r['rendered']}, failed {r['failed']}, screenshots {r['shots']}, contexts {extra['context_count']}, "
            f"aborted {extra['request_count/aborted']}"
        )
    if "ours" in results:
        ours = results["ours"]
        base = results.get("baseline")
        speed = ours["pages_per_second"] / base["pages_per_second"] if base else float("nan")
        print(f"browser: rss ratio {ours['at_end'].rss / ours['at_100'].rss:.2f}; pages/s ratio {speed:.2f}")


if __name__ == "__main__":
    main()
