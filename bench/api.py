"""The scans API under a read load, against the same reads made in process without HTTP.

    python bench/api.py [--scans 10000] [--findings 1000000] [--users 20] [--rate 200] [--seconds 60]

Seeds a fresh database with ``--scans`` completed scans spread over ``--users`` API users and
``--findings`` findings rows (real ciphertexts and blind indexes, 5 data per listing), starts
``python -m crawler.api`` in its own process, and sends ``--rate`` requests/s for ``--seconds``
from concurrent clients (an open loop: each request is due at a fixed time and its latency is
counted from then, so a stalled server cannot hide its queue). The mix, by weight: list scans 3,
get a scan 3, a findings page 3, stats 1, each as a random user on one of their own scans.
Prints p50/p95/p99 latency and errors per route and overall, then the same mix at the same rate
called in process on the storage layer (crawler.store: the SQL and the decryption without HTTP,
auth or JSON), and the ratio of the two p99s. Ends with ``EXPLAIN`` of every query the mix runs,
naming the index each one uses. Goal: p99 <= 100 ms and 0 errors on the 2-core machine.
Needs PostgreSQL on localhost (TEST_DATABASE_URL's server).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import drop_database, fresh_database  # noqa: E402
from tools.services import free_port  # noqa: E402

KEYS = "bench1:" + base64.b64encode(bytes(range(32))).decode()
BLIND_KEY = base64.b64encode(bytes(range(32, 64))).decode()
SITES = ("fastpeople", "thatsthem", "truepeople", "radaris", "spapeople")
LISTINGS_PER_SCAN_DATA = ("name", "phone", "email", "address", "age")
MIX = (("list", 3), ("get", 3), ("findings", 3), ("stats", 1))


def summarise_finished_sql() -> str:
    """finish_scan's summary of a scan's findings (crawler.store.stats.SUMMARY_OF_SCANS), over every
    finished scan at once; a scan without findings gets '{}' as finish_scan gives it."""
    from crawler.store.stats import SUMMARY_OF_SCANS

    per_scan = SUMMARY_OF_SCANS.format(scans="true")
    return f"""
UPDATE scans s SET findings_summary = coalesce(f.summary, '{{}}'::jsonb)
FROM scans s2 LEFT JOIN ({per_scan}) f ON f.scan_id = s2.id
WHERE s.id = s2.id AND s.status IN ('completed', 'failed', 'cancelled')"""


def seed(url: str, settings, scans: int, findings: int, users: int) -> dict[str, list[str]]:
    """Users' keys -> their scan ids. Rows are written by COPY, sealed as the pipeline seals them."""
    from crawler.security import context, keyring_from_settings
    from crawler.spider_args import PersonQuery
    from crawler.store.scans import seal_target

    ring = keyring_from_settings(settings)
    rng = random.Random(7)
    per_scan = max(1, findings // scans)
    listings_per_scan = max(1, per_scan // len(LISTINGS_PER_SCAN_DATA))
    now = dt.datetime.now(dt.UTC)
    owners = [f"bench-user-{n}" for n in range(users)]
    scans_of: dict[str, list[str]] = defaultdict(list)
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        for site in SITES:
            conn.execute(
                "INSERT INTO websites (id, name, base_url) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (site, site, f"http://127.0.0.1/{site}"),
            )
        with conn.cursor().copy(
            "COPY scans (id, status, spider, target_ciphertext, target_name_index, sites, counters, owner, "
            "priority, created_at, started_at, finished_at, definitions) FROM STDIN"
        ) as copy:
            for n in range(scans):
                scan_id, owner = str(uuid.uuid4()), owners[n % users]
                query = PersonQuery(first_name=f"First{n}", last_name=f"Last{n}", state="IL")
                ciphertext, name_index = seal_target(ring, scan_id, query)
                created = now - dt.timedelta(seconds=rng.uniform(0, 30 * 86400))
                duration = dt.timedelta(seconds=rng.uniform(5, 60))
                counters = {
                    s: {
                        "listings": 4,
                        "accepted": 4,
                        "rejected": 0,
                        "stored": 4,
                        "screenshots": 4,
                        "pages": {},
                        "errors": {},
                        "blocks": {},
                        "outcome": "found",
                    }
                    for s in SITES
                }
                copy.write_row(
                    (
                        scan_id,
                        "completed",
                        "scan",
                        ciphertext,
                        name_index,
                        list(SITES),
                        orjson.dumps(counters).decode(),
                        owner,
                        "normal",
                        created,
                        created,
                        created + duration,
                        "{}",
                    )
                )
                scans_of[owner].append(scan_id)
        scan_ids = [s for ids in scans_of.values() for s in ids]
        with conn.cursor().copy(
            "COPY findings (scan_id, website_id, data_type, value_ciphertext, value_index, listing_url_ciphertext, "
            "listing_url_index, key_id, confidence, evidence) FROM STDIN"
        ) as copy:
            written = 0
            for scan_id in scan_ids:
                for listing in range(listings_per_scan):
                    site = SITES[listing % len(SITES)]
                    listing_url = f"http://127.0.0.1/{site}/person/{scan_id[:8]}-{listing}"
                    url_ct = ring.encrypt(listing_url, context.finding_listing_url(scan_id))
                    url_index = ring.blind_index(listing_url)
                    for data_type in LISTINGS_PER_SCAN_DATA:
                        value = f"{data_type}-{listing}-{rng.randrange(10**6)}"
                        copy.write_row(
                            (
                                scan_id,
                                site,
                                data_type,
                                ring.encrypt(value, context.finding_value(scan_id, data_type)),
                                ring.blind_index(value),
                                url_ct,
                                url_index,
                                ring.current_key_id,
                                round(rng.uniform(0.7, 1.0), 3),
                                '{"name": {"level": "exact"}}',
                            )
                        )
                        written += 1
        # what finish_scan writes when a scan ends: its findings' counts by site and type
        summarised = conn.execute(summarise_finished_sql()).rowcount
        conn.execute("ANALYZE")
    print(
        f"seeded {scans:,} scans ({summarised:,} summarised) and {written:,} findings for {users} users "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return scans_of


def create_keys(settings, owners) -> dict[str, str]:
    from crawler.store.keys import create_key

    return {owner: create_key(settings, owner) for owner in owners}


def percentiles(latencies: list[float]) -> dict[str, float]:
    if not latencies:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000}


def schedule(rate: float, seconds: float, scans_of: dict[str, list[str]], seed_value: int = 11) -> list[tuple]:
    """(due offset, route, owner, scan id) for every request of the run."""
    rng = random.Random(seed_value)
    routes = [r for r, w in MIX for _ in range(w)]
    owners = list(scans_of)
    plan = []
    for n in range(int(rate * seconds)):
        owner = rng.choice(owners)
        plan.append((n / rate, rng.choice(routes), owner, rng.choice(scans_of[owner])))
    return plan


async def drive(plan, call) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Run ``call(route, owner, scan_id)`` at each due time; latency counts from the due time."""
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    start = time.perf_counter() + 0.5

    async def one(due, route, owner, scan_id):
        await asyncio.sleep(max(0.0, start + due - time.perf_counter()))
        try:
            ok = await call(route, owner, scan_id)
        except Exception:
            ok = False
        latencies[route].append(time.perf_counter() - (start + due))
        if not ok:
            errors[route] += 1

    await asyncio.gather(*(one(*entry) for entry in plan))
    return latencies, errors


def report(title: str, latencies, errors) -> float:
    every = [x for values in latencies.values() for x in values]
    print(f"\n{title}")
    for route, values in sorted(latencies.items()):
        p = percentiles(values)
        print(
            f"  {route:9s} n={len(values):6d}  p50 {p['p50']:6.1f} ms  p95 {p['p95']:6.1f} ms  "
            f"p99 {p['p99']:6.1f} ms  errors {errors.get(route, 0)}"
        )
    p = percentiles(every)
    total_errors = sum(errors.values())
    print(
        f"  {'all':9s} n={len(every):6d}  p50 {p['p50']:6.1f} ms  p95 {p['p95']:6.1f} ms  "
        f"p99 {p['p99']:6.1f} ms  errors {total_errors}"
    )
    return p["p99"]


async def http_run(base: str, keys: dict[str, str], plan) -> tuple:
    import aiohttp

    paths = {
        "list": lambda scan_id: "/api/scans?limit=20",
        "get": lambda scan_id: f"/api/scans/{scan_id}",
        "findings": lambda scan_id: f"/api/scans/{scan_id}/findings",
        "stats": lambda scan_id: "/api/stats",
    }
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(route, owner, scan_id):
            headers = {"Authorization": f"Bearer {keys[owner]}"}
            async with session.get(base + paths[route](scan_id), headers=headers) as response:
                await response.read()
                return response.status == 200

        return await drive(plan, call)


async def store_run(settings, plan) -> tuple:
    from crawler.db.pool import close_pools
    from crawler.store import findings, scans, stats

    calls = {
        "list": lambda owner, scan_id: scans.list_scans(settings, owner, limit=20),
        "get": lambda owner, scan_id: scans.get_scan(settings, owner, scan_id),
        "findings": lambda owner, scan_id: findings.list_listings(settings, owner, scan_id),
        "stats": lambda owner, scan_id: stats.stats(settings, owner),
    }

    async def call(route, owner, scan_id):
        return await calls[route](owner, scan_id) is not None

    try:
        return await drive(plan, call)
    finally:
        await close_pools()


def explain(url: str, scans_of) -> None:
    """EXPLAIN of each query the mix runs, with a real user's parameters."""
    from crawler.store.explain import explain_queries

    owner = next(iter(scans_of))
    print("\nEXPLAIN (the index each query uses)")
    with psycopg.connect(url, autocommit=True) as conn:
        for name, sql, params in explain_queries(owner, scans_of[owner][0]):
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params).fetchall())
            found = re.findall(r"Index (?:Only )?Scan using (\S+)|Bitmap Index Scan on (\S+)", plan)
            indexes = sorted({a or b for a, b in found})
            seq = [line.strip() for line in plan.splitlines() if "Seq Scan" in line]
            print(f"  {name:12s} indexes: {', '.join(indexes) or '-'}" + (f"  seq scans: {seq}" if seq else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scans", type=int, default=10_000)
    parser.add_argument("--findings", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name, url = fresh_database("bench_api")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("REDIS_URL",)},
        "DATABASE_URL": url,
        "CRAWLER_ENCRYPTION_KEYS": KEYS,
        "CRAWLER_BLIND_INDEX_KEY": BLIND_KEY,
        # a load test, not a test of the per-key limit: the limit stays out of the way
        "API_RATE_LIMIT_PER_MINUTE": "1000000",
        "API_RATE_LIMIT_BURST": "100000",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "CRAWLER_ENCRYPTION_KEYS", "CRAWLER_BLIND_INDEX_KEY")})
    os.environ.pop("REDIS_URL", None)
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings()
    server = None
    try:
        scans_of = seed(url, settings, args.scans, args.findings, args.users)
        keys = create_keys(settings, scans_of)
        port = free_port()
        env.update(API_HOST="127.0.0.1", API_PORT=str(port))
        server = subprocess.Popen([sys.executable, "-m", "crawler.api"], cwd=ROOT, env=env)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the API did not start") from None
                time.sleep(0.2)
        plan = schedule(args.rate, args.seconds, scans_of)
        print(f"\n{len(plan):,} requests at {args.rate:g}/s for {args.seconds:g} s (open loop)")
        api_p99 = report(
            "API over HTTP (python -m crawler.api, one uvicorn process)", *asyncio.run(http_run(base, keys, plan))
        )
        store_p99 = report(
            "the same reads in process on crawler.store (baseline)", *asyncio.run(store_run(settings, plan))
        )
        explain(url, scans_of)
        print(
            f"\nAPI p99 {api_p99:.1f} ms (goal <= 100 ms); ratio to the in-process store p99 ({store_p99:.1f} ms): "
            f"{api_p99 / store_p99:.2f}x"
        )
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if not args.keep:
            drop_database(name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
