"""`python -m crawler.demo` (what `make demo` runs) ends with a summary and rows in PostgreSQL."""

import subprocess
import sys

from support import ROOT


def test_demo_runs_twice_and_summarises(crawl_env, db):
    before = db.execute("SELECT count(*) FROM scans").fetchone()[0]
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "crawler.demo", "--events", "20000"],
            cwd=ROOT,
            env=crawl_env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        assert "== demo summary ==" in result.stdout and "-> completed" in result.stdout
        assert "encrypted findings rows (address" in result.stdout
        for site in ("fastpeople", "truepeople", "spa", "radaris", "thatsthem"):  # the sample is listed on all five
            line = next(line for line in result.stdout.splitlines() if line.startswith(f"  {site} "))
            assert "accepted  1," in line, line
        assert result.stdout.count(" screenshot /") >= 4
        assert "20,000 fetched" in result.stdout and "committed with checkpoints" in result.stdout
    demo_events = "SELECT count(*), count(DISTINCT id) FROM events WHERE source LIKE 'demo-%'"
    assert db.execute(demo_events).fetchone() == (20000, 20000)  # twice ingested, stored once
    assert db.execute("SELECT count(*) FROM scans WHERE status = 'completed'").fetchone()[0] >= before + 2
    assert db.execute("SELECT count(*) FROM findings").fetchone()[0] > 0
