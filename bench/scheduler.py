"""Requests/s through the shared (Redis, leased) scheduler vs Scrapy's in-memory scheduler.

    .venv/bin/python bench/scheduler.py [--pages 2000] [--rounds 5] [--no-x3] [--redis-url redis://127.0.0.1:6379/0]

Every run crawls the same lab page tree (page/n links to page/3n+1..3n+3, pages below
--pages) in a fresh lab tenant with no item pipelines, rate limits or circuit breaker,
so the scheduler path is what differs:

- memory:   one worker, Scrapy's own scheduler (``scrapy.core.scheduler.Scheduler``)
- shared x1 one worker on the shared scheduler (Redis queue, leases, acks, dupefilter)
- shared x3 three workers on one shared job

The rate is requests / (last arrival - first arrival) at the lab, so process start-up and
the idle-close wait are not counted. The three set-ups run in turn, --rounds times, and the
median of each is reported (a busy machine shifts single runs a lot); the headline is the median
of each round's x1 / memory ratio (both measured moments apart), with its spread. Goal: >= 0.95.
Workers and sandbox share the machine's cores
(``os.cpu_count()`` is printed): with 2 cores, three workers compete with each other
and with the sandbox for CPU, which caps what x3 can show.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import scrapy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class BenchTreeSpider(scrapy.Spider):
    """Follows the lab tree below ``limit``; yields nothing."""

    name = "bench_tree"
    custom_settings = {"ITEM_PIPELINES": {}}

    def __init__(self, base: str = "", limit: str = "1000", **kwargs):
        super().__init__(**kwargs)
        self.base, self.limit = base, int(limit)

    async def start(self):
        yield scrapy.Request(f"{self.base}/page/0", cb_kwargs={"n": 0})

    def parse(self, response, n):
        for child in (3 * n + 1, 3 * n + 2, 3 * n + 3):
            if child < self.limit:
                yield scrapy.Request(f"{self.base}/page/{child}", cb_kwargs={"n": child})


def spider_file() -> str:
    """runspider puts the file's directory first on sys.path, and bench/middlewares.py would shadow
    the project's middlewares package: run a one-line module from a temporary directory instead."""
    path = Path(tempfile.mkdtemp(prefix="bench-scheduler-")) / "bench_tree.py"
    path.write_text("from bench.scheduler import BenchTreeSpider\n\n\nclass Spider(BenchTreeSpider):\n    pass\n")
    return str(path)


def run(lab: str, pages: int, workers: int, env: dict, settings: dict) -> float:
    from tests.support import http

    base = f"{lab}/t/bench-{uuid.uuid4().hex[:10]}"
    command = [sys.executable, "-m", "scrapy", "runspider", spider_file(), "-a", f"base={base}", "-a", f"limit={pages}"]
    for name, value in settings.items():
        command += ["-s", f"{name}={value}"]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(workers)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        if proc.returncode:
            raise SystemExit(f"worker failed ({proc.returncode}):\n{err[-2000:]}")
    arrivals = [a for a in http(f"{base}/stats", timeout=30).json()["arrivals"] if "/page/" in a[1]]
    distinct = {a[1] for a in arrivals}
    if len(distinct) != pages:
        raise SystemExit(f"expected {pages} distinct pages, the lab saw {len(distinct)}")
    times = [a[0] for a in arrivals]
    return len(arrivals) / (max(times) - min(times))


def main() -> None:
    from sandbox.launch import running

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-x3", action="store_true", help="skip the three-worker runs")
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    base_env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    base_env.update(
        DATABASE_URL=args.database_url,
        RATELIMIT_ENABLED="false",
        CIRCUIT_ENABLED="false",
        LOG_LEVEL="WARNING",
        DATA_DIR=str(ROOT / ".data"),
        PYTHONPATH=str(ROOT),
    )
    common = {"CONCURRENT_REQUESTS": 16, "CONCURRENT_REQUESTS_PER_DOMAIN": 16}
    runs: dict[str, list[float]] = {"memory": [], "x1": [], "x3": []}
    with running(["--free-ports", "--only", "lab"], timeout=30) as urls:
        lab = urls["lab"]
        for _ in range(args.rounds):
            runs["memory"].append(
                run(lab, args.pages, 1, base_env, {**common, "SCHEDULER": "scrapy.core.scheduler.Scheduler"})
            )
            for name, workers in (("x1", 1),) if args.no_x3 else (("x1", 1), ("x3", 3)):
                shared_env = dict(
                    base_env,
                    REDIS_URL=args.redis_url,
                    SCHEDULER_IDLE_CLOSE_SECONDS="1",
                    REDIS_KEY_PREFIX=f"bench:{uuid.uuid4().hex[:8]}:",
                )
                runs[name].append(run(lab, args.pages, workers, shared_env, common))
    memory, one = (statistics.median(runs[name]) for name in ("memory", "x1"))
    ratios = [x1 / mem for x1, mem in zip(runs["x1"], runs["memory"], strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"scheduler bench: {args.pages} lab pages, CONCURRENT_REQUESTS=16 per worker, {os.cpu_count()} CPU cores "
        f"(sandbox and workers share them); load average {os.getloadavg()[0]:.1f}; medians of {args.rounds} rounds"
    )
    for name, values in runs.items():
        if values:
            print(f"  {name:6s} runs: " + ", ".join(f"{v:.0f}" for v in values))
    print(f"  memory   (Scrapy's scheduler, 1 worker): {memory:8.0f} requests/s   1.00")
    print(f"  shared x1 (Redis leases, 1 worker):      {one:8.0f} requests/s   {one / memory:.2f} of memory")
    if runs["x3"]:
        three = statistics.median(runs["x3"])
        print(
            f"  shared x3 (Redis leases, 3 workers):     {three:8.0f} requests/s   {three / memory:.2f} of memory, "
            f"{three / one:.2f} of shared x1"
        )
    print("  x1 / memory per round: " + ", ".join(f"{r:.2f}" for r in ratios))
    print(f"  x1 / memory: median {ratio:.2f}, spread {min(ratios):.2f}-{max(ratios):.2f} (goal >= 0.95)")
    print(f"scheduler: one-worker ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
