"""Queued scans drained by workers, against the same scans crawled one after another.

    python bench/scans_queue.py [--scans 200] [--workers 2] [--concurrency 2] [--serial 3] [--sites ...]

Starts the sandbox with every broker's rate limit off, the API and ``--workers`` worker processes
(``WORKER_CONCURRENCY=--concurrency`` each) on a fresh database, with our own rate limiter off too
(``RATELIMIT_ENABLED=false``: what this measures is the queue and the crawls, not politeness). Posts
``--scans`` scans of people from the sandbox population through the API, all at once, and waits
until the queue is drained. Prints scans/minute, sites/s, seconds per scan p50/p95 (queued to
finished and running alone), the share of sites per broker that succeeded (any outcome but
``error``), and the queue depth over time. The baseline, in the same run: ``--serial`` of the same
scans run one after another with ``scrapy crawl scan -a scan_id=...`` (no queue, no worker).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import math
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import drop_database, fresh_database  # noqa: E402
from sandbox.launch import running  # noqa: E402
from sandbox.population import default_population  # noqa: E402
from tools.services import child, create_key, free_port, wait_listening  # noqa: E402

BROKERS = ("fastpeople", "truepeople", "spa", "radaris", "thatsthem")
FINAL = ("completed", "failed", "cancelled")


def limits_off(urls: dict[str, str], sites) -> None:
    for site in sites:
        body = {"rate_limit_per_minute": 0}
        if site == "truepeople":
            body["burst_limit"] = 0
        httpx.post(f"{urls[site]}/_sandbox/config", json=body, timeout=10).raise_for_status()


def people(count: int, seed: int = 3) -> list[dict]:
    rng = random.Random(seed)
    chosen = rng.sample(default_population().people, count)
    return [
        {
            "first_name": p.first_name,
            "last_name": p.last_name,
            "city": p.current.city,
            "state": p.current.state,
            "age": p.age,
        }
        for p in chosen
    ]


def seconds(row_from, row_to) -> float:
    return (dt.datetime.fromisoformat(row_to) - dt.datetime.fromisoformat(row_from)).total_seconds()


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def run_queue(client: httpx.Client, persons: list[dict], sites: list[str]) -> tuple[float, list[dict], list]:
    started = time.monotonic()
    ids = []
    for person in persons:
        response = client.post("/api/scans", json={"person": person, "sites": sites})
        response.raise_for_status()
        ids.append(response.json()["id"])
    depth, scans = [], {}
    while True:
        pending = [i for i in ids if i not in scans]
        for scan_id in pending:
            scan = client.get(f"/api/scans/{scan_id}").json()
            if scan["status"] in FINAL:
                scans[scan_id] = scan
        stats = client.get("/api/stats").json()
        queue = stats.get("queue") or {}
        depth.append((round(time.monotonic() - started), queue.get("todo", 0) + queue.get("doing", 0)))
        if len(scans) == len(ids):
            return time.monotonic() - started, [scans[i] for i in ids], depth
        time.sleep(2)


def run_serial(env: dict, client: httpx.Client, persons: list[dict], sites: list[str]) -> float:
    """The same kind of scans, created through the API with priority low and run by hand, one at a time."""
    started = time.monotonic()
    for person in persons:
        scan_id = (
            subprocess.run(
                [sys.executable, "-m", "crawler.store", "create-scan", "--sites", ",".join(sites)],
                input=orjson.dumps(person),
                cwd=ROOT,
                env=env,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
            .splitlines()[-1]
        )
        subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "scan", "-a", f"scan_id={scan_id}", "-s", "LOG_LEVEL=WARNING"],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=2, help="WORKER_CONCURRENCY of each worker")
    parser.add_argument("--serial", type=int, default=3, help="scans of the serial baseline")
    parser.add_argument("--sites", default=",".join(BROKERS))
    args = parser.parse_args()
    sites = [s for s in args.sites.split(",") if s]
    name, url = fresh_database("bench_queue")
    logs = Path(f"/tmp/bench-scans-queue-{name}")
    logs.mkdir(parents=True, exist_ok=True)
    persons = people(args.scans + args.serial)
    try:
        with running(["--free-ports", "--events-count", "1000"]) as urls, ExitStack() as stack:
            limits_off(urls, sites)
            port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
                "DATABASE_URL": url,
                "CRAWLER_ENCRYPTION_KEYS": "bench1:" + base64.b64encode(bytes(range(32))).decode(),
                "CRAWLER_BLIND_INDEX_KEY": base64.b64encode(bytes(range(32, 64))).decode(),
                "SITES_BASE_URLS": ",".join(f"{s}={urls[s]}" for s in BROKERS),
                "RATELIMIT_ENABLED": "false",
                "DATA_DIR": str(logs / "data"),
                "API_HOST": "127.0.0.1",
                "API_PORT": str(port),
                "API_RATE_LIMIT_PER_MINUTE": "100000",
                "API_RATE_LIMIT_BURST": "10000",
                "WORKER_CONCURRENCY": str(args.concurrency),
                "LOG_LEVEL": "INFO",
            }
            key = create_key(env, "bench")
            client = stack.enter_context(
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
                )
            )
            api = stack.enter_context(child("api", [sys.executable, "-m", "crawler.api"], env, logs / "api.log"))
            wait_listening(api, port, "the API", logs / "api.log")

            serial = run_serial(env, client, persons[args.scans :], sites) if args.serial else 0.0
            for n in range(args.workers):
                stack.enter_context(
                    child("worker", [sys.executable, "-m", "crawler.worker"], env, logs / f"worker{n}.log")
                )
            elapsed, scans, depth = run_queue(client, persons[: args.scans], sites)
    finally:
        drop_database(name)

    statuses = Counter(s["status"] for s in scans)
    ran = [seconds(s["started_at"], s["finished_at"]) for s in scans if s.get("started_at") and s.get("finished_at")]
    waited = [seconds(s["created_at"], s["finished_at"]) for s in scans if s.get("finished_at")]
    success: dict[str, Counter] = defaultdict(Counter)
    for scan in scans:
        for c in scan.get("progress") or []:
            success[c["site"]]["ok" if c.get("outcome") != "error" else "error"] += 1
    rate = len(scans) / elapsed * 60
    print(
        f"{len(scans)} scans over {len(sites)} sites, {args.workers} workers x {args.concurrency}: drained in "
        f"{elapsed:.0f} s -> {rate:.1f} scans/min, {len(scans) * len(sites) / elapsed:.2f} sites/s; "
        f"statuses {dict(statuses)}"
    )
    print(
        f"seconds per scan running: p50 {pct(ran, 50):.1f}, p95 {pct(ran, 95):.1f}; "
        f"queued to finished: p50 {pct(waited, 50):.1f}, p95 {pct(waited, 95):.1f}"
    )
    print(
        "sites succeeded: "
        + ", ".join(f"{s} {c['ok'] / max(1, sum(c.values())):.0%}" for s, c in sorted(success.items()))
    )
    print("queue depth (s: depth): " + ", ".join(f"{t}: {d}" for t, d in depth[:: max(1, len(depth) // 12)]))
    if args.serial:
        serial_rate = args.serial / serial * 60
        print(
            f"baseline: {args.serial} scans in a row (scrapy crawl scan, no queue): {serial_rate:.1f} scans/min "
            f"-> queue/serial ratio {rate / serial_rate:.2f}"
        )
        per_day = rate * 60 * 24
        print(
            f"one node of this machine: about {per_day:,.0f} scans/day; 100,000 scans/day needs about "
            f"{math.ceil(100_000 / per_day)} such nodes"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
