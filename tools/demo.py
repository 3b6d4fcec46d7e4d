"""``python -m tools.demo [--events N]`` (``make demo``): the main jobs end to end on the sandbox.

Starts the sandbox on free ports, then runs, as a user would:
1. ``scrapy crawl scan`` for a sample person from the synthetic population over
   all five simulated broker sites (the person has 30 namesakes, two of them in
   the same state, so matching has to discriminate);
2. ``scrapy crawl events`` over the sandbox events API (N events, default
   1,000,000, paced by its published rate budget) into the ``events`` table;
and prints a summary: what ran, the rows written, and where to look. Safe to
run again: each run is a new scan and a new ingestion source, whose events
are already stored, so it adds no event rows (exactly once).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
from scrapy.utils.project import get_project_settings

from crawler.config import ConfigError, redact_url, validate
from crawler.db.embedded import database_url
from crawler.security.evidence import screenshots_dir
from sandbox.launch import SandboxFailed, running
from sandbox.population import default_population

ROOT = Path(__file__).resolve().parent.parent
# P000004 of the default population: listed on all five sites, 30 namesakes
SAMPLE = {"first_name": "John", "last_name": "Smith", "city": "Chicago", "state": "IL", "age": "40"}
BROKERS = ("fastpeople", "truepeople", "spa", "radaris", "thatsthem")


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


def site_lines(counters: dict, shots: dict[str, list[str]]) -> list[str]:
    lines = []
    for site, c in counters.items():
        errors = {**c.get("errors", {}), **c.get("blocks", {})}
        passed = ", ".join(f"{kind} {n}" for kind, n in sorted(errors.items())) or "none"
        lines.append(
            f"  {site:<11} {c.get('outcome', '?'):<10} listings {c.get('listings', 0):>2}, accepted "
            f"{c.get('accepted', 0):>2}, rejected {c.get('rejected', 0):>2}, errors/blocks met: {passed}"
        )
        lines += [f"  {'':<11} screenshot {path}" for path in shots.get(site, [])]
    return lines


def summary(url: str, scan_id: str, log_file: Path, shots_dir: Path) -> str:
    with psycopg.connect(url) as conn:
        status, counters = conn.execute("SELECT status, counters FROM scans WHERE id = %s", (scan_id,)).fetchone()
        by_type = conn.execute(
            "SELECT data_type, count(*) FROM findings WHERE scan_id = %s GROUP BY 1 ORDER BY 1", (scan_id,)
        ).fetchall()
        shots: dict[str, list[str]] = {}
        for site, path in conn.execute(
            "SELECT DISTINCT f.website_id, s.path FROM findings f JOIN screenshots s ON s.sha256 = f.screenshot_sha256"
            " WHERE f.scan_id = %s ORDER BY 1, 2",
            (scan_id,),
        ):
            shots.setdefault(site, []).append(str((shots_dir / path).resolve()))
        totals = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # fixed names
            for table in ("scans", "websites", "findings", "screenshots")
        }
    lines = [
        "",
        "== demo summary ==",
        f"ran:        scrapy crawl scan (scan {scan_id}) -> {status}",
        "per site:",
        *site_lines(counters, shots),
        f"this scan:  {sum(n for _, n in by_type)} encrypted findings rows ("
        + ", ".join(f"{kind} {n}" for kind, n in by_type)
        + ")",
        f"database:   {redact_url(url)} -> totals: " + ", ".join(f"{table} {n}" for table, n in totals.items()),
        f"log:        {log_file} (and events-*.log beside it)",
        "look:       .venv/bin/python -m crawler.db psql -c 'SELECT id, status, counters FROM scans'",
        "            values are AES-256-GCM ciphertexts (findings.value_ciphertext), screenshots are encrypted files",
        "            (decrypt one: .venv/bin/python -m crawler.security screenshot <sha256> -o shot.png);",
        "            nothing personal is in the clear",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events the sandbox API serves")
    args = parser.parse_args(argv)
    settings = get_project_settings()
    try:
        validate(settings)
        url = database_url(settings)  # holds the embedded server open while the demo runs
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    namesakes = default_population().search(SAMPLE["first_name"], SAMPLE["last_name"])
    logs_dir = Path(settings.get("DATA_DIR") or ".data") / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    scan_id = str(uuid.uuid4())
    log_file = (logs_dir / f"demo-{scan_id}.log").resolve()
    events_log = (logs_dir / f"events-{scan_id}.log").resolve()
    source = f"demo-{scan_id[:8]}"
    try:
        with running(["--free-ports", "--events-count", str(args.events)]) as urls:
            base_urls = ",".join(f"{site}={urls[site]}" for site in BROKERS)
            print(
                f"sandbox:    {len(BROKERS)} broker sites ({len(default_population().people)} synthetic people): "
                + ", ".join(f"{site} {urls[site]}" for site in BROKERS)
            )
            print(
                f"target:     {SAMPLE['first_name']} {SAMPLE['last_name']}, {SAMPLE['age']}, in {SAMPLE['city']} "
                f"{SAMPLE['state']} ({len(namesakes)} people of that name in the population)",
                flush=True,
            )
            arguments = [part for key, value in SAMPLE.items() for part in ("-a", f"{key}={value}")]
            crawl = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "scrapy",
                    "crawl",
                    "scan",
                    *arguments,
                    "-a",
                    f"scan_id={scan_id}",
                    "-s",
                    f"SITES_BASE_URLS={base_urls}",
                    "-s",
                    f"LOG_FILE={log_file}",
                    "-s",
                    "LOG_LEVEL=INFO",
                ],
                cwd=ROOT,
                check=False,
            )
            if crawl.returncode != 0:
                print(f"demo: the crawl failed (exit {crawl.returncode}); see {log_file}", file=sys.stderr)
                return crawl.returncode
            with psycopg.connect(url) as conn:
                events_before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
            print(
                f"events:     ingesting {args.events:,} events from {urls['events']} (paced by its rate budget)...",
                flush=True,
            )
            ingest = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "scrapy",
                    "crawl",
                    "events",
                    "-a",
                    f"base_url={urls['events']}",
                    "-a",
                    "api_key=sandbox-key",
                    "-a",
                    f"source={source}",
                    "-s",
                    f"LOG_FILE={events_log}",
                    "-s",
                    "LOG_LEVEL=INFO",
                ],
                cwd=ROOT,
                check=False,
            )
    except SandboxFailed as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    if ingest.returncode != 0:
        print(f"demo: the ingestion failed (exit {ingest.returncode}); see {events_log}", file=sys.stderr)
        return ingest.returncode
    print(summary(url, scan_id, log_file, screenshots_dir(settings)))
    print(events_line(url, source, events_before, events_log))
    return 0


if __name__ == "__main__":
    sys.exit(main())
