"""`scrapy crawl optout` end to end, one opt-out kind per test, against a sandbox of this module's own
(removals change what the brokers list; the session sandbox's listings stay for the other tests).

Findings come from a real `scrapy crawl scan` of a person listed on all five sites; removal is
requested through the store (as the API and the CLI do); then `scrapy crawl optout -a request=ID` runs
as often as it takes, as the worker's periodic job would. Durations are seconds: the brokers process an
opt-out in ~1.5 s and the verifying re-scan waits REMOVAL_CONFIRM_RESCAN_HOURS = 0.0006 h (~2 s).
Each listing must be submitted exactly once (the sandbox's `/__optouts`) and verified gone by
re-fetching it, never by the broker's success page.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextlib import contextmanager

import psycopg
import pytest

from crawler.db.pool import close_pools
from crawler.security.context import finding_listing_url
from crawler.store import removal_flow, removals
from sandbox.launch import running
from sandbox.population import default_population, ground_truth
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, crawl_keyring, created_scan_id, http, run_scrapy, store_settings

pytestmark = pytest.mark.e2e

SITES = ("fastpeople", "truepeople", "spa", "radaris", "thatsthem")
PERSON_ID = "P000023"  # listed on all five sites, with an e-mail
PROCESSING_SECONDS = 1.5
SETTINGS = {
    "REMOVAL_CONFIRM_RESCAN_HOURS": "0.0006",
    "REMOVAL_RETRY_BASE_HOURS": "0.0001",
    "REMOVAL_RETRY_MAX_HOURS": "0.0005",
    "MAIL_INBOX_POLL_SECONDS": "0.3",
    "MAIL_API_MIN_INTERVAL_SECONDS": "0.2",
    "REMOVAL_EMAIL": "optout@example.org",
    "SCREENSHOTS_ENABLED": "false",
    "LOG_LEVEL": "INFO",
}


def configure_sites(urls: dict, **extra) -> None:
    for site in SITES:
        changes = {"reset": True, "optout_processing_seconds": PROCESSING_SECONDS, **extra.get(site, {})}
        reply = http(f"{urls[site]}/_sandbox/config", data=changes)
        assert reply.status == 200, reply.body
    assert http(f"{urls['mail']}/_sandbox/config", data={"reset": True, "min_interval_seconds": 0.2}).status == 200


def flow_lines(logs: list[str]) -> str:
    """What the flows logged (for a failing assertion)."""
    return "\n".join(line for log in logs for line in log.splitlines() if "removal" in line or "ERROR" in line)


class World:
    """This module's sandbox, crawl environment and the scan whose findings are removed."""

    def __init__(self, urls: dict, env: dict, database_url: str, data_dir, person_id: str = PERSON_ID):
        self.urls, self.env, self.database_url = urls, env, database_url
        self.settings = store_settings(database_url, data_dir)
        self.person = default_population().get(person_id)
        self.truth = ground_truth(self.person)

    def scan(self, sites=SITES) -> str:
        person = {
            "first_name": self.person.first_name,
            "last_name": self.person.last_name,
            "state": self.person.current.state,
            "age": self.person.age,
        }
        scan_id = created_scan_id(self.env, person, "--sites", ",".join(sites))
        result = run_scrapy(["crawl", "scan", "-a", f"scan_id={scan_id}"], self.env, timeout=400)
        assert result.returncode == 0, result.stderr[-3000:]
        return scan_id

    def listing_url(self, site: str) -> str:
        return self.urls[site] + self.truth[site]

    def finding(self, scan_id: str, site: str) -> int:
        """A finding id of the scan's listing of the person on ``site``."""
        ring = crawl_keyring()
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT id, listing_url_ciphertext FROM findings WHERE scan_id = %s AND website_id = %s",
                (scan_id, site),
            ).fetchall()
        wanted = self.listing_url(site)
        found = [fid for fid, url in rows if ring.decrypt_text(url, finding_listing_url(scan_id)) == wanted]
        assert found, f"the scan did not find the {site} listing"
        return found[0]

    def store(self, call, *args):
        async def run():
            try:
                return await call(self.settings, *args)
            finally:
                await close_pools()

        return asyncio.run(run())

    def request(self, scan_id: str, site: str) -> removals.RemovalRequest:
        return self.store(removals.request_removal_by_finding, self.finding(scan_id, site))

    def get(self, request_id: int) -> removals.RemovalRequest:
        return self.store(removals.get_request, request_id)

    def optout(self, *args: str, timeout: float = 180):
        # DEBUG: every request and answer is logged, and still nothing personal (no_personal_data)
        result = run_scrapy(["crawl", "optout", *args], {**self.env, "LOG_LEVEL": "DEBUG"}, timeout=timeout)
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    def run_until(self, request_id: int, statuses: set[str], deadline_seconds: float = 120) -> str:
        """`scrapy crawl optout -a request=ID` until the request is in one of ``statuses``; the logs."""
        deadline = time.monotonic() + deadline_seconds
        logs = []
        while True:
            logs.append(self.optout("-a", f"request={request_id}").stderr)
            status = self.get(request_id).status
            if status in statuses:
                return "\n".join(logs)
            assert status != "failed" or "failed" in statuses, (status, flow_lines(logs))
            assert time.monotonic() < deadline, (status, flow_lines(logs))
            time.sleep(0.3)

    def history(self, request_id: int) -> list[str]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT to_status FROM removal_events WHERE request_id = %s ORDER BY id", (request_id,)
            ).fetchall()
        return [row[0] for row in rows]

    def tasks(self, request_id: int) -> list[tuple]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(
                "SELECT id, kind, instructions, url, done_at FROM removal_tasks WHERE request_id = %s ORDER BY id",
                (request_id,),
            ).fetchall()

    def finding_statuses(self, scan_id: str, site: str) -> set[str]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT DISTINCT status FROM findings WHERE scan_id = %s AND website_id = %s", (scan_id, site)
            ).fetchall()
        return {row[0] for row in rows}

    def optouts(self, site: str) -> dict:
        return http(f"{self.urls[site]}/__optouts").json()

    def submissions(self, site: str) -> int:
        return self.optouts(site)["submissions"].get(self.truth[site], 0)


@contextmanager
def open_world(database_url, tmp_path_factory, person_id: str = PERSON_ID, sites=SITES, **site_changes):
    """A sandbox of its own (mail into a Maildir of its own), the crawl environment, and a scan of the
    person over ``sites`` whose findings are then removed."""
    maildir = tmp_path_factory.mktemp("mail") / "Maildir"  # created by the sandbox's first delivery
    data_dir = tmp_path_factory.mktemp("optout-data")
    with running(["--free-ports", "--maildir", str(maildir), "--events-count", "100"], timeout=60) as urls:
        configure_sites(urls, **site_changes)
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_FILE", "LOG_FORMAT")}
        env.update(
            DATABASE_URL=database_url,
            DATA_DIR=str(data_dir),
            CRAWLER_ENCRYPTION_KEYS=ENCRYPTION_KEYS,
            CRAWLER_BLIND_INDEX_KEY=BLIND_INDEX_KEY,
            SITES_BASE_URLS=",".join(f"{site}={urls[site]}" for site in SITES),
            MAIL_INBOX=f"maildir:{maildir}",
            MAIL_API_URL=urls["mail"],
            **SETTINGS,
        )
        world = World(urls, env, database_url, data_dir, person_id)
        world.scan_id = world.scan(sites)
        yield world


@pytest.fixture(scope="module")
def world(database_url, tmp_path_factory):
    with open_world(database_url, tmp_path_factory, radaris={"relist_share": 1.0, "relist_seconds": 3600.0}) as world:
        yield world


def no_personal_data(world: World, log: str) -> None:
    for value in (world.person.first_name, world.person.last_name, *world.truth.values()):
        assert value not in log


def test_fastpeople_form_then_confirmation_email_then_verified_removed(world):
    request = world.request(world.scan_id, "fastpeople")
    log = world.run_until(request.id, {"removed"})
    assert world.history(request.id) == ["requested", "submitted", "awaiting_confirmation", "confirmed", "removed"]
    assert world.submissions("fastpeople") == 1
    assert world.truth["fastpeople"] in world.optouts("fastpeople")["confirmed"]
    assert world.finding_statuses(world.scan_id, "fastpeople") == {"removed"}
    assert "optout/fastpeople/submitted" in log and "optout/fastpeople/removed" in log
    no_personal_data(world, log)


def test_truepeople_captcha_becomes_a_task_then_the_person_submits_and_it_is_verified(world):
    request = world.request(world.scan_id, "truepeople")
    log = world.run_until(request.id, {"needs_human"})
    ((task_id, kind, instructions, url, done_at),) = world.tasks(request.id)
    assert kind == "captcha" and done_at is None
    assert url == world.urls["truepeople"] + "/removal"
    no_personal_data(world, instructions + url + log)
    assert world.submissions("truepeople") == 0  # never solved or bypassed by the crawl
    # the person solves the CAPTCHA and submits the form on the broker's page, then presses "done"
    reply = http(f"{world.urls['truepeople']}/_sandbox/optouts/submit", data={"url": world.listing_url("truepeople")})
    assert reply.status == 200, reply.body
    assert world.store(removal_flow.complete_task, None, task_id)
    assert world.get(request.id).status == "submitted"
    world.run_until(request.id, {"removed"})
    assert world.submissions("truepeople") == 1
    assert world.history(request.id) == ["requested", "needs_human", "submitted", "removed"]


def test_spa_flow_runs_in_chromium(world):
    request = world.request(world.scan_id, "spa")
    log = world.run_until(request.id, {"removed"})
    assert world.submissions("spa") == 1
    assert world.history(request.id) == ["requested", "submitted", "removed"]
    no_personal_data(world, log)


def test_radaris_moved_page_then_a_data_refresh_brings_it_back_and_it_is_removed_again(world):
    request = world.request(world.scan_id, "radaris")
    log = world.run_until(request.id, {"removed"})
    assert "optout/radaris/moved_page_followed" in log
    no_personal_data(world, log)
    assert world.submissions("radaris") == 1
    # the broker's data refresh re-lists it (now: verified removed first, so no clock race) and a
    # maintenance re-scan finds it again
    reply = http(f"{world.urls['radaris']}/_sandbox/config", data={"relist_seconds": 0.1})
    assert reply.status == 200, reply.body
    deadline = time.monotonic() + 30
    while world.truth["radaris"] not in world.optouts("radaris")["relisted"]:
        assert time.monotonic() < deadline, world.optouts("radaris")
        time.sleep(0.2)
    rescan = world.scan(("radaris",))
    counts = world.store(removals.reconcile_scan, rescan)
    assert counts == {"reappeared": 1, "requested": 1}
    again = world.get(request.id)
    assert (again.status, again.attempt, again.scan_id) == ("requested", 2, rescan)
    assert world.finding_statuses(rescan, "radaris") == {"removal_requested"}
    world.run_until(request.id, {"removed"})
    assert world.submissions("radaris") == 2  # once per attempt
    assert world.history(request.id)[-4:] == ["reappeared", "requested", "submitted", "removed"]


def test_thatsthem_takes_a_deletion_letter_through_the_mail_api(world):
    request = world.request(world.scan_id, "thatsthem")
    log = world.run_until(request.id, {"removed"})
    no_personal_data(world, log)  # the letter names the listing; the log does not
    assert world.submissions("thatsthem") == 1
    sent = [m for m in http(f"{world.urls['mail']}/__sent").json() if m["to"] == "privacy@thatsthem.test"]
    assert len(sent) == 1 and world.listing_url("thatsthem") in sent[0]["body"]
    assert world.history(request.id) == ["requested", "submitted", "removed"]
