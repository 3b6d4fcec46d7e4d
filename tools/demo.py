"""``python -m tools.demo [--events N]`` (``make demo``): the main jobs end to end on the sandbox.

Starts the sandbox on free ports, then, as a user would:
1. starts the scans service (``python -m crawler.api`` and ``python -m crawler.worker``), creates
   an API key, posts a scan of a sample person from the synthetic population over all five
   simulated broker sites (the person has 30 namesakes, two of them in the same state, so matching
   has to discriminate), follows its live events, and prints what the owner sees: each site's
   outcome and the listings found, their values masked in the terminal but for the last characters;
2. runs ``scrapy crawl events`` over the sandbox events API (N events, default 1,000,000, paced by
   its published rate budget) into the ``events`` table;
3. asks for every listing found to be removed (``DELETE /api/findings/{id}``), as the owner would,
   and follows the requests (``GET /api/removals``) while the worker carries them through each
   broker's opt-out flow (a form with an e-mailed confirmation link read from the demo's Maildir, a
   JavaScript app in Chromium, a moved opt-out page, a deletion letter through the e-mail API) until
   each is verified removed by re-fetching the listing; the one broker whose form sits behind a
   CAPTCHA shows up as a task for a person (``GET /api/tasks``), never solved. The brokers'
   processing times and the verification delay are scaled down to seconds;
then stops everything. Safe to run again: each run is a new scan and a new ingestion source, whose
events are already stored, so it adds no event rows (exactly once).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import orjson
import psycopg
from scrapy.utils.project import get_project_settings

from crawler.config import ConfigError, redact_url, validate
from crawler.db.embedded import database_url
from crawler.runtime import check_database
from sandbox.launch import SandboxFailed, running
from sandbox.population import default_population
from tools.services import ServiceFailed, environment, scans_service

ROOT = Path(__file__).resolve().parent.parent
# P000004 of the default population: listed on all five sites, 30 namesakes
SAMPLE = {"first_name": "John", "last_name": "Smith", "city": "Chicago", "state": "IL", "age": 40}
BROKERS = ("fastpeople", "truepeople", "spa", "radaris", "thatsthem")
SCAN_TIMEOUT = 900
REMOVAL_TIMEOUT = 600
SETTLED = ("removed", "needs_human", "failed")
# days and hours in production, seconds here: the brokers drop a listing PROCESSING_SECONDS after its
# opt-out, and the removal is verified VERIFY_SECONDS after the submission by re-fetching the listing
PROCESSING_SECONDS = 2
VERIFY_SECONDS = 5
REMOVAL_ENV = {
    "REMOVAL_CONFIRM_RESCAN_HOURS": str(VERIFY_SECONDS / 3600),
    "REMOVAL_RETRY_BASE_HOURS": str(2 / 3600),
    "REMOVAL_RETRY_MAX_HOURS": str(20 / 3600),
    "MAIL_INBOX_POLL_SECONDS": "1",
    "REMOVAL_SCHEDULE_CRON": "* * * * * */2",
}


def mask(value: str, keep: int = 4) -> str:
    """All but the last ``keep`` characters hidden, and the length too: the terminal may be shared or
    recorded."""
    value = str(value)
    return "•••" + (value[-keep:] if len(value) > keep else value[-1:])


def follow(client: httpx.Client, scan_id: str) -> str:
    """Print the scan's live events until ``completed``; returns its final status."""
    seen: Counter[str] = Counter()
    with client.stream("GET", f"/api/scans/{scan_id}/events", timeout=httpx.Timeout(30, read=SCAN_TIMEOUT)) as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event:
                data = orjson.loads(line.split(":", 1)[1])
                seen[event] += 1
                if event == "found_data":
                    print(f"  live:     {data.get('site')}: a listing matched (confidence {data.get('confidence')})")
                elif event == "error":
                    print(f"  live:     {data.get('site')}: {data.get('kind')}")
                elif event == "completed":
                    print("  live:     " + ", ".join(f"{n} {kind}" for kind, n in sorted(seen.items())) + " events")
                    return data.get("status", "?")
            elif not line:
                event = None
    return "?"


def listing_lines(listings: list[dict]) -> list[str]:
    lines = []
    for listing in listings:
        by_type: dict[str, list[str]] = {}
        for datum in listing["data"]:
            by_type.setdefault(datum["type"], []).append(mask(datum["value"]))
        values = "; ".join(f"{kind} {', '.join(masked)}" for kind, masked in by_type.items())
        shot = "screenshot" if listing.get("screenshot_url") else "no screenshot"
        lines.append(f"  {'':<11} confidence {listing['confidence']:.2f}, {listing['status']}, {shot}: {values}")
    return lines


def findings_of(client: httpx.Client, scan_id: str) -> list[dict]:
    listings, cursor = [], None
    while True:
        page = client.get(f"/api/scans/{scan_id}/findings", params={"cursor": cursor} if cursor else None)
        page.raise_for_status()
        body = page.json()
        listings += body["listings"]
        cursor = body.get("next_cursor")
        if not cursor:
            return listings


def scan_summary(client: httpx.Client, scan_id: str, page_url: str) -> list[str]:
    scan = client.get(f"/api/scans/{scan_id}").json()
    listings = findings_of(client, scan_id)
    by_site: dict[str, list[dict]] = {}
    for listing in listings:
        by_site.setdefault(listing["site"], []).append(listing)
    lines = [
        "",
        "== demo summary ==",
        f"ran:        POST /api/scans -> scan {scan_id} -> {scan['status']}",
        "per site:",
    ]
    for c in sorted(scan.get("progress", []), key=lambda p: p["site"]):
        site = c["site"]
        errors = {**c.get("errors_by_kind", {}), **c.get("blocks", {})}
        met = ", ".join(f"{kind} {n}" for kind, n in sorted(errors.items())) or "none"
        lines.append(
            f"  {site:<11} {c.get('outcome') or '?':<10} listings {c.get('listings', 0):>2}, accepted "
            f"{c.get('accepted', 0):>2}, rejected {c.get('rejected', 0):>2}, errors/blocks met: {met}"
        )
        lines += listing_lines(by_site.get(site, []))
    data = Counter(d["type"] for listing in listings for d in listing["data"])
    lines += [
        f"this scan:  {len(listings)} listings, {sum(data.values())} exposed values ("
        + ", ".join(f"{kind} {n}" for kind, n in sorted(data.items()))
        + "), decrypted for their owner only; stored as AES-256-GCM ciphertexts",
        f"page:       {page_url} (sign in with the key; `make serve` keeps it running)",
    ]
    return lines


def all_removals(client: httpx.Client) -> list[dict]:
    removals, cursor = [], None
    while True:
        page = client.get("/api/removals", params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        page.raise_for_status()
        body = page.json()
        removals += body["removals"]
        cursor = body.get("next_cursor")
        if not cursor:
            return removals


def wait_removals(client: httpx.Client, scan_id: str, count: int) -> list[dict]:
    """Poll the requests of the scan's listings until each is removed, waits for a person, or failed.
    A listing removed in an earlier run is found again by this scan: the worker reconciles the scan
    (the request follows it, ``reappeared``, a new attempt), so only requests that follow it count."""
    deadline, shown = time.monotonic() + REMOVAL_TIMEOUT, ""
    while True:
        removals = [r for r in all_removals(client) if r["scan_id"] == scan_id]
        states = Counter(r["status"] for r in removals)
        line = ", ".join(f"{n} {status}" for status, n in sorted(states.items()))
        if line != shown:
            print(f"  removals: {line}", flush=True)
            shown = line
        if len(removals) >= count and all(r["status"] in SETTLED for r in removals):
            return removals
        if time.monotonic() > deadline:
            return removals
        time.sleep(1)


def removal_lines(client: httpx.Client, removals: list[dict]) -> list[str]:
    lines = ["removal:    DELETE /api/findings/{id} per listing -> one request each, carried by the worker:"]
    for removal in sorted(removals, key=lambda r: (r["site"], r["id"])):
        path = " -> ".join(event["to_status"] for event in removal["history"])
        took = ""
        if removal["status"] == "removed" and removal.get("removed_at"):
            seconds = dt.datetime.fromisoformat(removal["removed_at"]) - dt.datetime.fromisoformat(
                removal["created_at"]
            )
            took = f" in {seconds.total_seconds():.0f} s (verified by re-fetching the listing)"
        lines.append(f"  {removal['site']:<11} {removal['status']:<12} {path}{took}")
    ours = {r["id"] for r in removals}
    for task in (t for t in client.get("/api/tasks").json()["tasks"] if t["removal_id"] in ours):
        lines.append(f"  task:      {task['site']}: {task['kind']}: {task['instructions'].strip()} ({task['url']})")
    removed = sum(1 for r in removals if r["status"] == "removed")
    human = sum(1 for r in removals if r["status"] == "needs_human")
    lines.append(f"  {removed} of {len(removals)} listings verified removed, {human} waiting for a person")
    return lines


def request_removals(client: httpx.Client, scan_id: str) -> tuple[int, list[str]]:
    listings = findings_of(client, scan_id)
    for listing in listings:
        client.delete(f"/api/findings/{listing['id']}").raise_for_status()
    print(f"removal:    asked for {len(listings)} listings to be removed; following the requests...", flush=True)
    removals = wait_removals(client, scan_id, len(listings))
    lines = removal_lines(client, removals)
    unsettled = [r for r in removals if r["status"] not in SETTLED]
    failed = [r for r in removals if r["status"] == "failed"]
    return (1 if unsettled or failed or not listings else 0), lines


def run_scan(env: dict, logs_dir: Path) -> tuple[int, list[str]]:
    """The sample scan through the API, then the removal of what it found; (exit code, summary lines)."""
    with scans_service(env, logs_dir) as service:
        client = httpx.Client(base_url=service.api, headers={"Authorization": f"Bearer {service.key}"}, timeout=30)
        with client:
            created = client.post("/api/scans", json={"person": SAMPLE, "priority": "high"})
            if created.status_code != 202:
                print(f"demo: POST /api/scans answered {created.status_code}: {created.text}", file=sys.stderr)
                return 1, []
            scan_id = created.json()["id"]
            print(f"scan:       POST /api/scans -> {scan_id} (pending); following its events...", flush=True)
            status = follow(client, scan_id)
            lines = scan_summary(client, scan_id, service.api + "/")
            if status != "completed":
                return 1, lines
            print("\n".join(lines), flush=True)
            code, removal = request_removals(client, scan_id)
    return code, removal


def events_line(url: str, source: str, before: int, log_file: Path) -> str:
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        committed = conn.execute(
            "SELECT coalesce(sum(rows_committed), 0) FROM ingest_checkpoints WHERE source = %s", (source,)
        ).fetchone()[0]
    text = log_file.read_text() if log_file.exists() else ""
    finished = re.findall(r"events finished: this worker fetched ([\d,]+), ([\d,]+)/s", text)
    fetched, rate = finished[-1] if finished else ("?", "?")
    return (
        f"events:     scrapy crawl events (source {source}): {fetched} fetched at {rate} events/s, "
        f"{committed:,} committed with checkpoints, {total - before:,} new rows in events ({total:,} in all; "
        "an event already stored is never stored twice)"
    )


def ingest(url: str, events_url: str, source: str, log_file: Path) -> int:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            "events",
            "-a",
            f"base_url={events_url}",
            "-a",
            "api_key=sandbox-key",
            "-a",
            f"source={source}",
            "-s",
            f"LOG_FILE={log_file}",
            "-s",
            "LOG_LEVEL=INFO",
        ],
        cwd=ROOT,
        env=environment(DATABASE_URL=url),
        check=False,
    ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events the sandbox API serves")
    args = parser.parse_args(argv)
    settings = get_project_settings()
    try:
        validate(settings)
        check_database(settings)  # the embedded database is migrated; an external one must be current
        url = database_url(settings)  # holds the embedded server open while the demo runs
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    namesakes = default_population().search(SAMPLE["first_name"], SAMPLE["last_name"])
    run_id = uuid.uuid4().hex[:8]
    logs_dir = (Path(settings.get("DATA_DIR") or ".data") / "logs" / f"demo-{run_id}").resolve()
    logs_dir.mkdir(parents=True, exist_ok=True)
    events_log, source = logs_dir / "events.log", f"demo-{run_id}"
    try:
        maildir = logs_dir / "mail"  # the demo user's mailbox: the sandbox delivers, the opt-out flows read
        with running(["--free-ports", "--events-count", str(args.events), "--maildir", str(maildir)]) as urls:
            for site in BROKERS:
                config = {"optout_processing_seconds": PROCESSING_SECONDS}
                httpx.post(f"{urls[site]}/_sandbox/config", json=config, timeout=10).raise_for_status()
            print(
                f"sandbox:    {len(BROKERS)} broker sites ({len(default_population().people)} synthetic people): "
                + ", ".join(f"{site} {urls[site]}" for site in BROKERS)
            )
            print(
                f"target:     {SAMPLE['first_name']} {SAMPLE['last_name']}, {SAMPLE['age']}, in {SAMPLE['city']} "
                f"{SAMPLE['state']} ({len(namesakes)} people of that name in the population)",
                flush=True,
            )
            env = environment(
                DATABASE_URL=url,
                SITES_BASE_URLS=",".join(f"{site}={urls[site]}" for site in BROKERS),
                LOG_LEVEL="INFO",
                MAIL_API_URL=urls["mail"],
                MAIL_INBOX=f"maildir:{maildir}",
                **REMOVAL_ENV,
            )
            code, lines = run_scan(env, logs_dir)
            print("\n".join(lines))
            if code != 0:
                print(f"demo: the scan or the removals did not complete; logs in {logs_dir}", file=sys.stderr)
                return code
            with psycopg.connect(url) as conn:
                events_before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            print(f"events:     ingesting {args.events:,} events from {urls['events']} (paced by its rate budget)...")
            if (code := ingest(url, urls["events"], source, events_log)) != 0:
                print(f"demo: the ingestion failed (exit {code}); see {events_log}", file=sys.stderr)
                return code
    except (SandboxFailed, ServiceFailed) as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    print(events_line(url, source, events_before, events_log))
    print(f"database:   {redact_url(url)}; logs: {logs_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
