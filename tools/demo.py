"""``python -m tools.demo [--events N]`` (``make demo``): the main jobs end to end on the sandbox.

Starts the sandbox on free ports, then, as a user would:
1. starts the scans service (``python -m crawler.api`` and ``python -m crawler.worker``), creates
   an API key, posts a scan of a sample person from the synthetic population over all five
   simulated broker sites (the person has 30 namesakes, two of them in the same state, so matching
   has to discriminate), follows its live events, and prints what the owner sees: each site's
   outcome and the listings found, their values masked in the terminal but for the last characters;
2. runs ``scrapy crawl events`` over the sandbox events API (N events, default 1,000,000, paced by
   its published rate budget) into the ``events`` table;
then stops everything. Safe to run again: each run is a new scan and a new ingestion source, whose
events are already stored, so it adds no event rows (exactly once).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
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


def run_scan(env: dict, logs_dir: Path) -> tuple[int, list[str]]:
    """The sample scan through the API; (exit code, summary lines)."""
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
    return (0 if status == "completed" else 1), lines


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
        with running(["--free-ports", "--events-count", str(args.events)]) as urls:
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
            )
            code, lines = run_scan(env, logs_dir)
            print("\n".join(lines))
            if code != 0:
                print(f"demo: the scan did not complete; logs in {logs_dir}", file=sys.stderr)
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
