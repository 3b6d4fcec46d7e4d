"""Removal end to end: N sandbox people scanned, every listing found asked to be removed, each
verified gone by a re-scan, with the brokers' processing delays scaled down to seconds.

    python bench/removal.py [--people 8] [--seed 5] [--processing 2] [--verify 4] [--relist 0]

Starts the sandbox (its brokers' rate limits off, their opt-out processing ``--processing``
seconds, radaris re-listing ``--relist`` of removed people), the API and a worker on a fresh
database, scans ``--people`` people of the population (seed ``--seed``) over the five sites,
then, as a user would, ``DELETE /api/findings/{id}`` once per listing found. The worker carries
the requests through the sites' opt-out flows (``scrapy crawl optout``): web forms with e-mail
confirmation (read from the sandbox's Maildir), a CAPTCHA (-> a human task, never solved), a
JavaScript app in Chromium, a moved page, a letter through the e-mail API; and verifies each
removal by re-fetching the listing ``--verify`` seconds after the submission.

Prints per site: requests, submitted, verified removed, median time from request to verified
removal, submissions per listing (the brokers' own counts, ``GET /__optouts``) and human tasks;
then ``removed R of N removable; duplicate submissions D``. "Removable" leaves out the listings
whose flow needs a person (a CAPTCHA); the goal is R = N and D = 0.
"""

from __future__ import annotations

import argparse
import base64
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.databases import drop_database, fresh_database  # noqa: E402
from bench.scans_queue import people  # noqa: E402
from sandbox.launch import running  # noqa: E402
from tools.services import child, create_key, free_port, wait_listening  # noqa: E402

BROKERS = ("fastpeople", "truepeople", "spa", "radaris", "thatsthem")
FINAL_SCAN = ("completed", "failed", "cancelled")
SETTLED = ("removed", "needs_human", "failed")

REQUESTS = """
SELECT r.id, r.website_id, r.status, r.attempt, r.created_at, r.removed_at,
       EXISTS (SELECT 1 FROM removal_events e WHERE e.request_id = r.id AND e.to_status = 'submitted') AS submitted,
       EXISTS (SELECT 1 FROM removal_tasks t WHERE t.request_id = r.id AND t.done_at IS NULL) AS open_task
FROM removal_requests r ORDER BY r.id"""


def configure_sandbox(urls: dict[str, str], processing: float, relist: float) -> None:
    for site in BROKERS:
        body: dict = {"rate_limit_per_minute": 0, "optout_processing_seconds": processing}
        if site == "truepeople":
            body["burst_limit"] = 0
        if site == "radaris":
            body.update(relist_share=relist, relist_seconds=1)
        httpx.post(f"{urls[site]}/_sandbox/config", json=body, timeout=10).raise_for_status()
    httpx.post(f"{urls['mail']}/_sandbox/config", json={"min_interval_seconds": 1}, timeout=10).raise_for_status()


def scan_all(client: httpx.Client, persons: list[dict], timeout: float) -> list[str]:
    ids = []
    for person in persons:
        response = client.post("/api/scans", json={"person": person, "sites": list(BROKERS)})
        response.raise_for_status()
        ids.append(response.json()["id"])
    deadline, done = time.monotonic() + timeout, set()
    while len(done) < len(ids):
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: {len(ids) - len(done)} scans did not finish in {timeout:.0f} s")
        for scan_id in set(ids) - done:
            if client.get(f"/api/scans/{scan_id}").json()["status"] in FINAL_SCAN:
                done.add(scan_id)
        time.sleep(1)
    return ids


def request_removals(client: httpx.Client, scan_ids: list[str]) -> int:
    """DELETE the first finding of every listing the scans found; returns the listings asked."""
    asked = 0
    for scan_id in scan_ids:
        cursor = None
        while True:
            page = client.get(f"/api/scans/{scan_id}/findings", params={"cursor": cursor} if cursor else None).json()
            for listing in page["listings"]:
                client.delete(f"/api/findings/{listing['id']}").raise_for_status()
                asked += 1
            cursor = page.get("next_cursor")
            if not cursor:
                break
    return asked


def wait_settled(url: str, timeout: float) -> list[tuple]:
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(url) as conn:
            rows = conn.execute(REQUESTS).fetchall()
        if rows and all(r[2] in SETTLED for r in rows):
            return rows
        if time.monotonic() > deadline:
            print(f"bench: not settled after {timeout:.0f} s: {dict(Counter(r[2] for r in rows))}", file=sys.stderr)
            return rows
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=8)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--processing", type=float, default=2.0, help="brokers' processing delay, seconds")
    parser.add_argument("--verify", type=float, default=4.0, help="REMOVAL_CONFIRM_RESCAN_HOURS, in seconds")
    parser.add_argument("--relist", type=float, default=0.0, help="radaris re-listing share (0..1)")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    name, url = fresh_database("bench_removal")
    work = Path(tempfile.mkdtemp(prefix="bench-removal-"))
    maildir = work / "mail"
    started = time.monotonic()
    try:
        with (
            running(["--free-ports", "--events-count", "1000", "--maildir", str(maildir)]) as urls,
            ExitStack() as stack,
        ):
            configure_sandbox(urls, args.processing, args.relist)
            port = free_port()
            env = {
                **{k: v for k, v in os.environ.items() if k != "REDIS_URL"},
                "DATABASE_URL": url,
                "CRAWLER_ENCRYPTION_KEYS": "bench1:" + base64.b64encode(bytes(range(32))).decode(),
                "CRAWLER_BLIND_INDEX_KEY": base64.b64encode(bytes(range(32, 64))).decode(),
                "SITES_BASE_URLS": ",".join(f"{s}={urls[s]}" for s in BROKERS),
                "DATA_DIR": str(work / "data"),
                "API_HOST": "127.0.0.1",
                "API_PORT": str(port),
                "API_RATE_LIMIT_PER_MINUTE": "100000",
                "API_RATE_LIMIT_BURST": "10000",
                "MAIL_API_URL": urls["mail"],
                "MAIL_API_MIN_INTERVAL_SECONDS": "1",
                "MAIL_INBOX": f"maildir:{maildir}",
                "MAIL_INBOX_POLL_SECONDS": "1",
                "REMOVAL_SCHEDULE_CRON": "* * * * * */2",  # the removal tick every 2 s (default: each minute)
                "REMOVAL_CONFIRM_RESCAN_HOURS": str(args.verify / 3600),
                "REMOVAL_RETRY_BASE_HOURS": str(2 / 3600),
                "REMOVAL_RETRY_MAX_HOURS": str(10 / 3600),
                "LOG_LEVEL": "INFO",
            }
            key = create_key(env, "bench")
            client = stack.enter_context(
                httpx.Client(
                    base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60
                )
            )
            api = stack.enter_context(child("api", [sys.executable, "-m", "crawler.api"], env, work / "api.log"))
            stack.enter_context(child("worker", [sys.executable, "-m", "crawler.worker"], env, work / "worker.log"))
            wait_listening(api, port, "the API", work / "api.log")
            scans = scan_all(client, people(args.people, args.seed), args.timeout)
            asked = request_removals(client, scans)
            print(f"{args.people} people scanned, {asked} listings asked to be removed; waiting for verification...")
            rows = wait_settled(url, args.timeout)
            optouts = {site: httpx.get(f"{urls[site]}/__optouts", timeout=10).json() for site in BROKERS}
    finally:
        drop_database(name)

    by_site: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_site[row[1]].append(row)
    header = ("site", "requests", "submitted", "removed", "median s", "subm/listing", "tasks")
    print(f"{header[0]:<11} " + " ".join(f"{h:>{w}}" for h, w in zip(header[1:], (8, 9, 7, 8, 12, 5), strict=True)))
    removed = removable = duplicates = 0
    for site in BROKERS:
        site_rows = by_site.get(site, [])
        counts = list(optouts[site].get("submissions", {}).values())
        duplicates += sum(n - 1 for n in counts if n > 1)
        times = [(r[5] - r[4]).total_seconds() for r in site_rows if r[2] == "removed" and r[5]]
        tasks = sum(1 for r in site_rows if r[7])
        per_listing = f"{max(counts)}" if counts else "-"
        print(
            f"{site:<11} {len(site_rows):>8} {sum(1 for r in site_rows if r[6]):>9} "
            f"{sum(1 for r in site_rows if r[2] == 'removed'):>7} "
            f"{statistics.median(times) if times else float('nan'):>8.1f} {per_listing:>12} {tasks:>5}"
        )
        removed += sum(1 for r in site_rows if r[2] == "removed")
        removable += sum(1 for r in site_rows if not r[7])
    print(f"statuses: {dict(Counter(r[2] for r in rows))}; attempts > 1: {sum(1 for r in rows if r[3] > 1)}")
    print(f"elapsed {time.monotonic() - started:.0f} s (machine: {os.cpu_count()} cores)")
    print(f"removed {removed} of {removable} removable; duplicate submissions {duplicates}")
    return 0 if removed == removable and duplicates == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
