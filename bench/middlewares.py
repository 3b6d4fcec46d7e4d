"""Pages/s through the project's resilience middlewares vs bare Scrapy, same pages, same run.

    python bench/middlewares.py [--pages 3000] [--concurrency 32] [--rounds 5] [--redis URL]
                                [--measure lab|crawl|cpu] [--pin]

Starts the sandbox lab, then crawls N local pages with ``scrapy crawl fetch``:
- **bare**: Scrapy's default downloader middlewares and scheduler (its own
  RetryMiddleware), none of ours;
- **stack**: ours (retry + dead letters, circuit breaker, captcha slowdown, rate
  limiter, auth, block detection, deferring scheduler) with limits out of the way
  (RATELIMIT_DEFAULT_RPS=100000), in process;
- **stack+redis**: the same with the rate limits and circuits shared in Redis,
  still with the in-process scheduler (the shared one: bench/scheduler.py).
Item pipelines are off in every run, so only the middlewares differ.

Steadiness: the three configurations run in interleaved rounds (the order rotates
each round, so none always runs first or after the same neighbour), each in a
fresh lab tenant; per configuration the median and the range of --rounds runs
are reported, and ratios are ratios of medians to bare from the same run. The
rate is pages / (last - first arrival at the lab) by default (``--measure lab``:
process start-up and the close wait are not counted); the crawl's own
elapsed_time_seconds and its pages per CPU-second (steadier on a loaded machine,
but blind to the Redis server's own CPU) are printed beside it. ``--pin`` puts
the lab on one core and the crawls on another (measured: worse on a loaded
machine, where a pinned crawl cannot leave a busy core).

The last line is the headline: ``middlewares: redis ratio R`` (median stack+redis /
median bare; goal >= 0.90, and >= 0.85 in process).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from scrapy import signals
from scrapy.settings.default_settings import EXTENSIONS_BASE

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("bare", "stack", "stack+redis")
OURS = [
    "middlewares.retry.RetryMiddleware",
    "middlewares.auth_token.AuthTokenMiddleware",
    "middlewares.circuit_breaker.CircuitBreakerMiddleware",
    "middlewares.slowdown.BlockSlowdownMiddleware",
    "middlewares.rate_limit.RateLimitMiddleware",
    "middlewares.blocks.BlockDetectionMiddleware",
]


class CpuClock:
    """Extension loaded into the benched crawl: the process's CPU seconds (all threads) from
    spider_opened to spider_closed, as the stat ``bench/cpu_seconds``."""

    def __init__(self, crawler):
        self.stats, self.started = crawler.stats, 0.0
        crawler.signals.connect(self.opened, signal=signals.spider_opened)
        crawler.signals.connect(self.closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def opened(self, spider):
        self.started = time.process_time()

    def closed(self, spider, reason):
        self.stats.set_value("bench/cpu_seconds", round(time.process_time() - self.started, 4))


def crawl(base: str, pages: int, concurrency: int, mode: str, redis_url: str) -> dict[str, float]:
    """One crawl in a fresh tenant: {"lab": pages/s by arrivals, "crawl": pages/s by the crawl's elapsed time}."""
    settings = {
        "ITEM_PIPELINES": "{}",
        "LOG_LEVEL": "INFO",
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "RATELIMIT_DEFAULT_RPS": 100000,
        "REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:",
        # Scrapy's own extensions plus the CPU clock (the project's EXTENSIONS stay as they are)
        "EXTENSIONS_BASE": json.dumps(EXTENSIONS_BASE | {"bench.middlewares.CpuClock": 0}),
    }
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if mode == "bare":
        settings["DOWNLOADER_MIDDLEWARES"] = json.dumps(
            dict.fromkeys(OURS) | {"scrapy.downloadermiddlewares.retry.RetryMiddleware": 550}
        )
        settings["SCHEDULER"] = "scrapy.core.scheduler.Scheduler"
    elif mode == "stack+redis":
        env["REDIS_URL"] = redis_url
        # the middlewares' shared state only: the shared scheduler has its own bench (bench/scheduler.py)
        settings["SCHEDULER"] = "crawler.scheduling.deferring.DeferringScheduler"
    tenant = f"{base}/t/{uuid.uuid4().hex[:10]}"
    command = [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "fetch",
        "-a",
        f"url_template={tenant}/page/{{n}}",
        "-a",
        f"count={pages}",
    ] + [a for k, v in settings.items() for a in ("-s", f"{k}={v}")]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    from tests.support import http

    elapsed = re.search(r"'elapsed_time_seconds': ([\d.]+)", result.stderr)
    count = re.search(r"'response_received_count': (\d+)", result.stderr)
    cpu = re.search(r"'bench/cpu_seconds': ([\d.]+)", result.stderr)
    if result.returncode != 0 or not elapsed or not count or not cpu or int(count.group(1)) != pages:
        sys.exit(f"bench: {mode} crawl failed:\n{result.stderr[-2000:]}")
    times = [a[0] for a in http(f"{tenant}/stats", timeout=30).json()["arrivals"] if "/page/" in a[1]]
    if len(times) != pages:
        sys.exit(f"bench: {mode}: the lab saw {len(times)} page requests, expected {pages}")
    return {
        "cpu": pages / float(cpu.group(1)),
        "lab": (len(times) - 1) / (max(times) - min(times)),
        "crawl": pages / float(elapsed.group(1)),
    }


MEASURES = {
    "cpu": "pages per CPU-second of the crawl process",
    "lab": "pages/s by lab arrivals",
    "crawl": "pages/s by the crawl's elapsed_time_seconds",
}


def summary(values: list[float]) -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    return f"median {median:7.0f}  range {low:5.0f}-{high:<5.0f} (spread {(high - low) / median:4.0%})"


def cpus_to_pin(enabled: bool) -> tuple[set[int], set[int]] | None:
    """(lab's core, crawls' core), or None when not pinning (not asked, one core, or no sched_setaffinity)."""
    if not enabled or not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    return ({cpus[0]}, {cpus[1]}) if len(cpus) >= 2 else None


def main() -> None:
    from sandbox.launch import running

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--measure", choices=tuple(MEASURES), default="lab", help="the rate the headline uses")
    parser.add_argument("--pin", action="store_true", help="lab on the first core, crawls on the second")
    args = parser.parse_args()
    runs: dict[str, dict[str, list[float]]] = {mode: {m: [] for m in MEASURES} for mode in MODES}
    pinned = cpus_to_pin(args.pin)
    everywhere = os.sched_getaffinity(0) if pinned else None
    started, load_before = time.monotonic(), os.getloadavg()
    if pinned:  # children inherit the affinity: the sandbox gets the first core, the crawls the second
        os.sched_setaffinity(0, pinned[0])
    try:
        with running(["--only", "lab", "--lab-port", "0"]) as urls:
            if pinned:
                os.sched_setaffinity(0, pinned[1])
            for round_ in range(args.rounds):
                order = MODES[round_ % len(MODES) :] + MODES[: round_ % len(MODES)]
                for mode in order:
                    rates = crawl(urls["lab"], args.pages, args.concurrency, mode, args.redis)
                    for measure, rate in rates.items():
                        runs[mode][measure].append(rate)
                    print(
                        f"round {round_ + 1}: {mode:<12} "
                        + ", ".join(f"{rates[m]:5.0f} {m}" for m in MEASURES)
                        + f"  (load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
    finally:
        if everywhere:
            os.sched_setaffinity(0, everywhere)
    pin = f"lab on core {min(pinned[0])}, crawls on core {min(pinned[1])}" if pinned else "not pinned"
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{args.pages} pages, CONCURRENT_REQUESTS={args.concurrency}, {args.rounds} interleaved rounds, "
        f"{os.cpu_count()} cores ({pin}), {time.monotonic() - started:.0f}s; "
        f"load average before {load_before[0]:.2f}, after {load}"
    )
    for measure in sorted(MEASURES, key=lambda m: m == args.measure):  # the headline's measure last
        bare = statistics.median(runs["bare"][measure])
        print(f"{MEASURES[measure]}{' (headline)' if measure == args.measure else ''}; ratio of medians to bare:")
        for mode in MODES:
            values = runs[mode][measure]
            print(f"  {mode:<12} {summary(values)}  ratio {statistics.median(values) / bare:.2f}")
    headline = {mode: statistics.median(runs[mode][args.measure]) for mode in MODES}
    print(f"middlewares: redis ratio {headline['stack+redis'] / headline['bare']:.2f}")


if __name__ == "__main__":
    main()
