"""Events API -> PostgreSQL with the events spider, against a raw server-side COPY of the same rows.

    python bench/events.py [--events 1000000] [--small 200000] [--partitions 4]

Starts the sandbox events API (limits generous, faults off), runs
``scrapy crawl events`` into a fresh database (validation, Bloom dedup on Redis,
COPY upserts, checkpoints), then, in the same run, times a server-side
``COPY ... FROM 'file'`` of exactly the rows it stored into an identical empty
table. Prints events/s, raw COPY rows/s, the ratio (goal >= 0.75) and the crawl's
peak RSS; with --small it first runs a smaller ingestion too, so the two peak
RSS figures show whether memory grows with the number of events. Ends with one
line ``events: ratio R`` (the full run's). The sandbox, Redis, PostgreSQL and
the crawl share the machine's cores: the load average is printed with each run.
Needs PostgreSQL (superuser, for server-side COPY) and Redis on localhost.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sandbox.launch import running  # noqa: E402

ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def events_sandbox(count: int):
    """The sandbox events API alone, limits out of the way, faults off (a context manager)."""
    return running(
        [
            "--only",
            "events",
            "--events-port",
            "0",
            "--events-count",
            str(count),
            "--events-rate-limit",
            "1000000",
            "--events-rate-window",
            "60",
        ]
    )


def fresh_database() -> tuple[str, str]:
    name = f"bench_events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    subprocess.run(
        [sys.executable, "-m", "crawler.db", "migrate", "-s", f"DATABASE_URL={url}"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return name, url


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ingest(api: str, url: str, partitions: int, workdir: Path) -> tuple[float, int, float]:
    """(seconds from spider open to close, rows stored, peak RSS MiB of the crawl)."""
    env = dict(
        os.environ,
        DATABASE_URL=url,
        REDIS_URL=REDIS,
        REDIS_KEY_PREFIX=f"bench:{uuid.uuid4().hex[:8]}:",
        EVENTS_API_KEY="sandbox-key",
        DATA_DIR=str(workdir / "data"),
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            "events",
            "-a",
            f"base_url={api}",
            "-a",
            f"partitions={partitions}",
            "-s",
            "LOG_LEVEL=INFO",
            "-s",
            "PG_BATCH_ROWS=20000",
            "-s",
            "EVENTS_PROGRESS_SECONDS=5",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB; the largest child so far
    elapsed = re.search(r"'elapsed_time_seconds': ([\d.]+)", result.stderr)
    if result.returncode != 0 or not elapsed:
        sys.exit(f"bench: the crawl failed:\n{result.stderr[-3000:]}")
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    if peak <= before:
        print("bench: note: peak RSS not above an earlier child's; figure is a lower bound", file=sys.stderr)
    return float(elapsed.group(1)), rows, peak / 1024


def raw_copy(url: str) -> float:
    """Seconds for a server-side COPY of the stored rows into an identical empty table."""
    path = Path(tempfile.gettempdir()) / f"bench-events-{uuid.uuid4().hex[:8]}.copy"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"COPY events (id, type, occurred_at, payload, source) TO '{path}'")
        conn.execute("CREATE TABLE events_raw (LIKE events INCLUDING ALL)")
        started = time.perf_counter()
        conn.execute(f"COPY events_raw (id, type, occurred_at, payload, source) FROM '{path}'")
        seconds = time.perf_counter() - started
    path.unlink(missing_ok=True)
    return seconds


def run(count: int, partitions: int, workdir: Path) -> tuple[float, float, float]:
    name, url = fresh_database()
    try:
        with events_sandbox(count) as urls:
            seconds, rows, rss = ingest(urls["events"], url, partitions, workdir)
        if rows != count:
            sys.exit(f"bench: stored {rows} of {count} events")
        copy_seconds = raw_copy(url)
    finally:
        drop_database(name)
    return count / seconds, count / copy_seconds, rss


def line(count: int, rate: float, copy_rate: float, rss: float) -> str:
    load = ", ".join(f"{n:.1f}" for n in os.getloadavg())
    return (
        f"{count:,} events: {rate:,.0f} events/s, raw COPY {copy_rate:,.0f} rows/s, "
        f"ratio {rate / copy_rate:.2f}, peak RSS {rss:.0f} MiB (load average {load})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument(
        "--small", type=int, default=200_000, help="a first, smaller run for the memory comparison (0: skip)"
    )
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        if args.small:
            rate, copy_rate, rss_small = run(args.small, args.partitions, workdir)
            print(line(args.small, rate, copy_rate, rss_small), flush=True)
        rate, copy_rate, rss = run(args.events, args.partitions, workdir)
    print(line(args.events, rate, copy_rate, rss))
    print(f"events: ratio {rate / copy_rate:.2f}")


if __name__ == "__main__":
    main()
