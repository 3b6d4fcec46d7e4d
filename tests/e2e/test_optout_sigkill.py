"""Exactly once under SIGKILL: `scrapy crawl optout` killed (SIGKILL, its whole process group) right
after a submission is recorded, again and again, then run to the end: no listing is ever submitted twice
in an attempt, and every one ends verified removed with exactly one submission counted by the broker.

The kill comes as soon as the database shows a submission 'sending' (recorded before the form or
letter left) or 'sent' (its answer recorded); fastpeople's only after 'sent': a form that never left
would wait for a confirmation e-mail for the YAML's 24 hours, longer than a test. A request found
'sending' by the next crawl has an unknown outcome and is never submitted again: if the broker never
got it, the verifying re-scan finds the listing and a new attempt submits it (still one submission).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psycopg
import pytest
from test_optout import open_world

from support import ROOT, SCRAPY

pytestmark = pytest.mark.e2e

SITES = ("fastpeople", "radaris", "thatsthem")
PERSON_ID = "P000021"  # Ryan Smith, AZ: listed on all five sites
KILLED_AFTER = {"fastpeople": ("sent",)}  # others: ("sending", "sent")


@pytest.fixture(scope="module")
def world(database_url, tmp_path_factory):
    with open_world(database_url, tmp_path_factory, PERSON_ID, SITES) as world:
        yield world


def submissions(world, ids: dict) -> dict:
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT website_id, submission, status, attempt FROM removal_requests WHERE id = ANY(%s)",
            (list(ids.values()),),
        ).fetchall()
    return {site: (submission, status, attempt) for site, submission, status, attempt in rows}


def crawl_and_kill(world, ids: dict, killed_for: set) -> str | None:
    """`scrapy crawl optout` (every due request), SIGKILLed once a submission not killed for yet is
    recorded; the site it was killed for (None: the crawl ended first)."""
    process = subprocess.Popen(
        [*SCRAPY, "crawl", "optout"],
        cwd=ROOT,
        env=world.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its process group: the crawl and anything it started
    )
    deadline = time.monotonic() + 120
    try:
        while process.poll() is None:
            for site, (submission, _, _) in submissions(world, ids).items():
                if site not in killed_for and submission in KILLED_AFTER.get(site, ("sending", "sent")):
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
                    print(f"killed after {site}'s submission was {submission}")  # pytest -s
                    return site
            assert time.monotonic() < deadline, "the crawl neither submitted nor ended"
            time.sleep(0.01)
        return None
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_sigkill_right_after_each_submission_never_submits_a_listing_twice(world):
    ids = {site: world.request(world.scan_id, site).id for site in SITES}
    killed_for: set[str] = set()
    deadline = time.monotonic() + 240
    while len(killed_for) < len(SITES):
        site = crawl_and_kill(world, ids, killed_for)
        if site is not None:
            killed_for.add(site)
        for site in SITES:  # no broker ever counts a second submission
            assert world.submissions(site) <= 1, (site, world.optouts(site))
        assert time.monotonic() < deadline, submissions(world, ids)
    # then crawls run to the end: each request verified removed
    while {status for _, status, _ in submissions(world, ids).values()} != {"removed"}:
        world.optout()
        for site in SITES:
            assert world.submissions(site) <= 1, (site, world.optouts(site))
        assert time.monotonic() < deadline, submissions(world, ids)
        time.sleep(0.3)
    assert {site: world.submissions(site) for site in SITES} == dict.fromkeys(SITES, 1)
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        per_attempt = conn.execute(
            "SELECT request_id, attempt, count(*) FROM removal_events WHERE request_id = ANY(%s) "
            "AND to_status = 'submitted' GROUP BY request_id, attempt HAVING count(*) > 1",
            (list(ids.values()),),
        ).fetchall()
    assert per_attempt == []
