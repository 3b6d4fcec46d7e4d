"""`python -m tools.demo` (what `make demo` runs), twice on a database of its own: the summary a user reads
through the API agrees with the rows stored, and the sample person's listing is found on each of the five sites."""

import re
import subprocess
import sys
from urllib.parse import urlsplit

import psycopg
import pytest

from sandbox.population import default_population, ground_truth
from support import ROOT, crawl_keyring
from tools.demo import BROKERS

pytestmark = pytest.mark.e2e

EVENTS = 20000
SAMPLE_ID = "P000004"  # the demo's sample person (tools/demo.py)


def run_demo(env) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--events", str(EVENTS)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "== demo summary ==" in result.stdout, result.stdout[-3000:]
    return result.stdout


def number(text: str) -> int:
    return int(text.replace(",", ""))


def listing_paths(db, scan_id: str) -> dict[str, set[str]]:
    """The decrypted listing URLs' paths of the scan's findings, by site."""
    from crawler.security.context import finding_listing_url

    ring = crawl_keyring()
    rows = db.execute(
        "SELECT website_id, listing_url_ciphertext FROM findings WHERE scan_id = %s", (scan_id,)
    ).fetchall()
    paths: dict[str, set[str]] = {}
    for site, ciphertext in rows:
        url = ring.decrypt_text(bytes(ciphertext), finding_listing_url(scan_id))
        paths.setdefault(site, set()).add(urlsplit(url).path)
    return paths


def check_summary(out: str, db, new_events: int) -> None:
    scan_id, status = re.search(r"ran: +POST /api/scans -> scan ([0-9a-f-]{36}) -> (\w+)", out).groups()
    assert status == "completed"
    assert db.execute("SELECT status, owner FROM scans WHERE id = %s", (scan_id,)).fetchone() == ("completed", "demo")

    # "this scan: L listings, N exposed values (address a, age b, ...)" is what the findings table holds
    listings, total, kinds = re.search(r"this scan: +(\d+) listings, (\d+) exposed values \(([^)]*)\)", out).groups()
    stored = db.execute(
        "SELECT data_type, count(*) FROM findings WHERE scan_id = %s GROUP BY 1 ORDER BY 1", (scan_id,)
    ).fetchall()
    assert int(total) == sum(n for _, n in stored) > 0
    assert kinds == ", ".join(f"{kind} {n}" for kind, n in stored)
    distinct = "SELECT count(DISTINCT (website_id, listing_url_index)) FROM findings WHERE scan_id = %s"
    assert int(listings) == db.execute(distinct, (scan_id,)).fetchone()[0]

    # the sample person is listed on every site: one accepted listing each, and it is theirs
    truth = ground_truth(default_population().get(SAMPLE_ID))
    found = listing_paths(db, scan_id)
    for site in BROKERS:
        line = next(line for line in out.splitlines() if line.startswith(f"  {site} "))
        assert "accepted  1," in line, line
        assert found.get(site) == {urlsplit(truth[site]).path}, (site, found.get(site))
    # each finding records the site definition that read it (the version the scan ran with) and its evidence
    definitions = db.execute("SELECT definitions FROM scans WHERE id = %s", (scan_id,)).fetchone()[0]
    assert set(definitions) == set(BROKERS) and all(len(sha) == 64 for sha in definitions.values())
    versions = db.execute(
        "SELECT DISTINCT website_id, definition_sha256, evidence IS NOT NULL FROM findings WHERE scan_id = %s",
        (scan_id,),
    ).fetchall()
    assert sorted(versions) == sorted((site, sha, True) for site, sha in definitions.items())
    # values are masked in the terminal: the person's name never appears whole
    assert "John Smith" not in out.split("== demo summary ==")[1]
    assert len(re.findall(r"confidence [\d.]+, found, screenshot:", out)) >= 4

    # removal: each listing's request verified removed by re-fetching it, but truepeople's (a CAPTCHA)
    assert re.search(r"^  4 of 5 listings verified removed, 1 waiting for a person$", out, re.M)
    requests = dict(
        db.execute("SELECT website_id, status FROM removal_requests r WHERE r.scan_id = %s", (scan_id,)).fetchall()
    )
    assert requests == {site: "needs_human" if site == "truepeople" else "removed" for site in BROKERS}
    tasks = re.findall(r"^  task: +(\w+): (\w+):", out, re.M)
    assert tasks == [("truepeople", "captcha")]
    for site in set(BROKERS) - {"truepeople"}:
        line = next(line for line in out.splitlines() if line.startswith(f"  {site} ") and "removed  " in line)
        assert "submitted" in line and "verified by re-fetching the listing" in line, line

    # "events: ... N fetched at R events/s, C committed with checkpoints, K new rows in events (T in all; ...)"
    fetched, committed, new, in_all = re.search(
        r"events: .*: ([\d,]+) fetched at [\d,]+ events/s, ([\d,]+) committed with checkpoints, "
        r"([\d,]+) new rows in events \(([\d,]+) in all",
        out,
    ).groups()
    assert number(fetched) == number(committed) == EVENTS  # every event fetched and committed, each run
    assert number(new) == new_events
    assert number(in_all) == db.execute("SELECT count(*) FROM events").fetchone()[0] == EVENTS


def test_demo_twice_summarises_what_it_stored(crawl_env, own_database_url):
    env = dict(crawl_env, DATABASE_URL=own_database_url)
    with psycopg.connect(own_database_url, autocommit=True) as db:
        check_summary(run_demo(env), db, new_events=EVENTS)
        check_summary(run_demo(env), db, new_events=0)  # a new source, the same events: stored once
        assert db.execute("SELECT count(*) FROM scans WHERE status = 'completed'").fetchone()[0] == 2
