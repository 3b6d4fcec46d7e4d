"""Events through validate -> dedup (Redis Bloom) -> postgres, against a raw COPY.

    python bench/pipeline_events.py [--events 1000000] [--batch 5000]

Generates N realistic events (id, type, mixed timestamp formats within a page:
ISO-8601, epoch ms, epoch s; user and session ids; a small JSON payload), runs
a real Scrapy crawl whose spider yields one EventBatch per page through the
project's pipelines into a fresh database, then, in the same run, times a raw
server-side ``COPY ... FROM 'file'`` of the same rows into an identical table.
Ends with: events/s, raw COPY rows/s and ``ratio R`` (goal: R >= 0.5).
Needs PostgreSQL (superuser, for the server-side COPY) and Redis on localhost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)

from crawler.normalize import timestamp  # noqa: E402

TYPES = [
    ("page_view", 35),
    ("click", 25),
    ("api_call", 10),
    ("form_submit", 10),
    ("scroll", 5),
    ("purchase", 5),
    ("error", 5),
    ("video_play", 5),
]
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def make_events(count: int, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    names, weights = zip(*TYPES, strict=True)
    events = []
    for n in range(count):
        moment = START + dt.timedelta(seconds=rng.random() * 31 * 86400)
        style = n % 3  # the three timestamp formats, mixed within every page
        stamp = (
            moment.isoformat().replace("+00:00", "Z")
            if style == 0
            else (int(moment.timestamp() * 1000) if style == 1 else int(moment.timestamp()))
        )
        events.append(
            {
                "id": f"evt_{rng.getrandbits(64):016x}",
                "type": rng.choices(names, weights)[0],
                "timestamp": stamp,
                "userId": f"u_{rng.randrange(3000):04d}",
                "sessionId": f"s_{rng.randrange(60000):05d}",
                "deviceType": rng.choice(["desktop", "mobile", "tablet"]),
                "properties": {"path": f"/p/{rng.randrange(500)}", "durationMs": rng.randrange(20000)},
            }
        )
    return events


def copy_text(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_copy_file(events: list[dict], path: Path, source: str) -> None:
    """The rows the pipeline stores, as a COPY text file (what a hand-written loader would produce)."""
    with path.open("w") as out:
        for event in events:
            occurred = timestamp(event["timestamp"]).isoformat()
            payload = copy_text(orjson.dumps(event).decode())
            out.write(f"{event['id']}\t{event['type']}\t{occurred}\t{payload}\t{source}\n")
    path.chmod(0o644)


def run_pipeline(database_url: str, redis_url: str, batches: list[list[dict]], source: str) -> float:
    import scrapy
    from scrapy import signals
    from scrapy.crawler import AsyncCrawlerProcess
    from scrapy.utils.project import get_project_settings

    from crawler.items import EventBatch
    from pipelines.postgres import PostgresPipeline

    timing: dict[str, float] = {}

    class BenchEvents(scrapy.Spider):
        name = "bench_events"

        async def start(self):
            timing["start"] = time.perf_counter()
            for batch in batches:
                yield EventBatch(source=source, events=batch)

    def scraped(item, spider):
        timing["last_item"] = time.perf_counter()

    class TimedPostgresPipeline(PostgresPipeline):
        """The project's pipeline, timing its final flush: the run ends there. (Scrapy
        itself only notices the end on its 5-second idle heartbeat, which is not
        pipeline time.)"""

        async def close_spider(self):
            started = time.perf_counter()
            await super().close_spider()
            timing["final_flush"] = time.perf_counter() - started

    settings = get_project_settings()
    settings.setdict(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": f"bench:{uuid.uuid4().hex[:8]}:",
            "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
            "PG_BATCH_ROWS": 20000,
            "PG_POOL_MAX_SIZE": 2,
            "EXTENSIONS": {**settings.getdict("EXTENSIONS"), "crawler.scans.ScanTracker": None},
            "ITEM_PIPELINES": {
                **settings.getdict("ITEM_PIPELINES"),
                "pipelines.postgres.PostgresPipeline": None,
                TimedPostgresPipeline: 800,
            },
        },
        priority="cmdline",
    )
    process = AsyncCrawlerProcess(settings)
    crawler = process.create_crawler(BenchEvents)
    crawler.signals.connect(scraped, signal=signals.item_scraped)
    process.crawl(crawler)
    process.start()
    return timing["last_item"] - timing["start"] + timing["final_flush"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument(
        "--admin-url", default=os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()

    name = f"bench_events_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = args.admin_url.rpartition("/")[0] + f"/{name}"
    try:
        from crawler.db.migrate import connect, migrate

        with connect(database_url) as conn:
            migrate(conn)
            conn.execute("CREATE TABLE events_raw (LIKE events INCLUDING ALL)")
        print(f"generating {args.events:,} events...", flush=True)
        events = make_events(args.events)
        batches = [events[i : i + args.batch] for i in range(0, len(events), args.batch)]
        with tempfile.TemporaryDirectory() as tmp:
            copy_file = Path(tmp) / "events.copy"
            write_copy_file(events, copy_file, "bench")
            Path(tmp).chmod(0o755)

            # the baseline first, on the fresh database: the pipeline gets no head start
            with psycopg.connect(database_url, autocommit=True) as conn:
                started = time.perf_counter()
                conn.execute(f"COPY events_raw (id, type, occurred_at, payload, source) FROM '{copy_file}'")
                raw_seconds = time.perf_counter() - started
                raw_rows = conn.execute("SELECT count(*) FROM events_raw").fetchone()[0]
                conn.execute("CHECKPOINT")
            seconds = run_pipeline(database_url, args.redis_url, batches, "bench")
            with psycopg.connect(database_url, autocommit=True) as conn:
                stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rate, raw_rate = stored / seconds, raw_rows / raw_seconds
        assert stored == raw_rows == len({e["id"] for e in events}), (stored, raw_rows)
        print(
            f"pipeline: {stored:,} events in {seconds:.2f}s; raw COPY: {raw_rows:,} rows in {raw_seconds:.2f}s; "
            f"peak RSS {peak_mib:.0f} MiB (events held in memory for the run)"
        )
        print(f"events/s {rate:,.0f}  raw COPY rows/s {raw_rate:,.0f}  ratio {rate / raw_rate:.2f}")
    finally:
        with psycopg.connect(args.admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return 0


if __name__ == "__main__":
    sys.exit(main())
