"""Pages/s through the project's resilience middlewares vs bare Scrapy, same pages, same run.

    python bench/middlewares.py [--pages 3000] [--concurrency 32] [--rounds 2] [--redis URL]

Starts the sandbox lab, then crawls N local pages with ``scrapy crawl fetch``:
- **bare**: Scrapy's default downloader middlewares and scheduler (its own
  RetryMiddleware), none of ours;
- **stack**: ours (retry + dead letters, circuit breaker, captcha slowdown, rate
  limiter, auth, block detection, deferring scheduler) with limits out of the way
  (RATELIMIT_DEFAULT_RPS=100000), in process;
- **stack+redis**: the same with shared state in Redis (three round trips per request),
  still with the in-process scheduler (the shared one: bench/scheduler.py).
Item pipelines are off in every run, so only the middlewares differ. Each
configuration runs --rounds times (alternating); the best run counts. Prints
pages/s per configuration and the ratio to bare (goal: overhead <= 15%, i.e.
ratio >= 0.85 in process).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.launch import running  # noqa: E402

OURS = [
    "middlewares.retry.RetryMiddleware",
    "middlewares.auth_token.AuthTokenMiddleware",
    "middlewares.circuit_breaker.CircuitBreakerMiddleware",
    "middlewares.slowdown.BlockSlowdownMiddleware",
    "middlewares.rate_limit.RateLimitMiddleware",
    "middlewares.blocks.BlockDetectionMiddleware",
]


def crawl(base: str, pages: int, concurrency: int, mode: str, redis_url: str) -> float:
    settings = {
        "ITEM_PIPELINES": "{}",
        "LOG_LEVEL": "INFO",
        "CONCURRENT_REQUESTS": concurrency,
        "CONCURRENT_REQUESTS_PER_DOMAIN": concurrency,
        "RATELIMIT_DEFAULT_RPS": 100000,
        "REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:",
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
    elapsed = re.search(r"'elapsed_time_seconds': ([\d.]+)", result.stderr)
    count = re.search(r"'response_received_count': (\d+)", result.stderr)
    if result.returncode != 0 or not elapsed or not count or int(count.group(1)) != pages:
        sys.exit(f"bench: {mode} crawl failed:\n{result.stderr[-2000:]}")
    return pages / float(elapsed.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    best: dict[str, float] = {}
    with running(["--only", "lab", "--lab-port", "0"]) as urls:
        for round_ in range(args.rounds):
            for mode in ("bare", "stack", "stack+redis"):
                rate = crawl(urls["lab"], args.pages, args.concurrency, mode, args.redis)
                best[mode] = max(best.get(mode, 0.0), rate)
                print(f"round {round_ + 1}: {mode:<12} {rate:8.0f} pages/s", flush=True)
    bare = best["bare"]
    print(
        f"bare Scrapy {bare:,.0f} pages/s; stack {best['stack']:,.0f} pages/s (ratio {best['stack'] / bare:.2f}); "
        f"stack with Redis {best['stack+redis']:,.0f} pages/s (ratio {best['stack+redis'] / bare:.2f})"
    )


if __name__ == "__main__":
    main()
