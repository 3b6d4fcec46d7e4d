"""``python -m crawler.demo`` (``make demo``): one scan end to end on the sandbox.

Starts the sandbox on free ports, picks a sample person from its synthetic
population (one with namesakes elsewhere, so the search has to discriminate),
runs ``scrapy crawl example`` as a user would, and prints a summary: what ran,
the rows written, and where to look. Safe to run again: each run is a new scan.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from scrapy.utils.project import get_project_settings

from crawler.config import ConfigError, redact_url, validate
from crawler.db.embedded import database_url
from sandbox.population import default_population

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ("John", "Smith", "IL")


def start_sandbox(workdir: Path) -> tuple[subprocess.Popen, dict[str, str]]:
    ports_file = workdir / "sandbox-ports.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--free-ports", "--ports-file", str(ports_file)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not ports_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"demo: the sandbox did not start: {process.stderr.read().strip()}")
        time.sleep(0.05)
    return process, json.loads(ports_file.read_text())


def summary(url: str, scan_id: str, log_file: Path) -> str:
    with psycopg.connect(url) as conn:
        status, counters = conn.execute("SELECT status, counters FROM scans WHERE id = %s", (scan_id,)).fetchone()
        by_type = conn.execute(
            "SELECT data_type, count(*) FROM findings WHERE scan_id = %s GROUP BY 1 ORDER BY 1", (scan_id,)
        ).fetchall()
        totals = {
            table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed names
            for table in ("scans", "websites", "findings")
        }
    lines = [
        "",
        "== demo summary ==",
        f"ran:        scrapy crawl example (scan {scan_id}) -> {status}",
        "listings:   "
        + ", ".join(f"{site}: {c['listings']} accepted, {sum(c['errors'].values())} errors" for site, c in counters.items()),
        f"this scan:  {sum(n for _, n in by_type)} encrypted findings rows ("
        + ", ".join(f"{kind} {n}" for kind, n in by_type)
        + ")",
        f"database:   {redact_url(url)} -> totals: "
        + ", ".join(f"{table} {n}" for table, n in totals.items()),
        f"log:        {log_file}",
        "look:       .venv/bin/python -m crawler.db psql -c 'SELECT id, status, counters FROM scans'",
        "            values are AES-256-GCM ciphertexts (findings.value_ciphertext); nothing personal is in clear",
    ]
    return "\n".join(lines)


def main() -> int:
    settings = get_project_settings()
    try:
        validate(settings)
        url = database_url(settings)  # holds the embedded server open while the demo runs
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    first, last, state = SAMPLE
    namesakes = default_population().search(first, last)
    logs_dir = Path(settings.get("DATA_DIR") or ".data") / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)
    scan_id = str(uuid.uuid4())
    log_file = (logs_dir / f"demo-{scan_id}.log").resolve()
    with tempfile.TemporaryDirectory() as workdir:
        sandbox, urls = start_sandbox(Path(workdir))
        try:
            print(f"sandbox:    directory at {urls['directory']} ({len(default_population().people)} synthetic people)")
            print(f"target:     {first} {last} in {state} ({len(namesakes)} people of that name on the directory)")
            crawl = subprocess.run(
                [sys.executable, "-m", "scrapy", "crawl", "example",
                 "-a", f"first_name={first}", "-a", f"last_name={last}", "-a", f"state={state}",
                 "-a", f"scan_id={scan_id}", "-a", f"base_url={urls['directory']}",
                 "-s", f"LOG_FILE={log_file}", "-s", "LOG_LEVEL=INFO"],
                cwd=ROOT, check=False,
            )  # fmt: skip
        finally:
            sandbox.send_signal(signal.SIGTERM)
            sandbox.wait(timeout=15)
    if crawl.returncode != 0:
        print(f"demo: the crawl failed (exit {crawl.returncode}); see {log_file}", file=sys.stderr)
        return crawl.returncode
    print(summary(url, scan_id, log_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
