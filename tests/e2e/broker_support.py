"""Helpers of the broker spider end-to-end tests: targets, crawls, sandbox limits, findings."""

from __future__ import annotations

import json
import re
import uuid
from contextlib import contextmanager

from sandbox.population import default_population, ground_truth
from support import crawl_keyring, http, run_scrapy


def namesakes(site: str, person) -> list:
    """Who the site's name-and-state search finds for the person (its candidates)."""
    from sandbox.brokers import fastpeople, thatsthem
    from sandbox.brokers.common import is_listed

    share = {"fastpeople": fastpeople.SHARE, "thatsthem": thatsthem.SHARE}[site]
    state = person.current.state
    return [
        p
        for p in default_population().search(person.first_name, person.last_name, state=state)
        if any(a.state == state for a in p.addresses) and is_listed(site, p, share)
    ]


def target(site: str, min_candidates: int = 2, max_candidates: int = 4, *, sites=(), skip: int = 0):
    """A person listed on ``site`` (and ``sites``) whose name-and-state search there finds a few candidates."""
    found = 0
    for person in default_population().people:
        truth = ground_truth(person)
        if site not in truth or any(s not in truth for s in sites) or not person.emails:
            continue
        if min_candidates <= len(namesakes(site, person)) <= max_candidates:
            if found == skip:
                return person
            found += 1
    raise AssertionError("no suitable target in the population")


def person_args(person, *, city: bool = False) -> list[str]:
    args = [
        "-a",
        f"first_name={person.first_name}",
        "-a",
        f"last_name={person.last_name}",
        "-a",
        f"state={person.current.state}",
        "-a",
        f"age={person.age}",
    ]
    if person.middle_name:
        args += ["-a", f"middle_name={person.middle_name}"]
    if city:
        args += ["-a", f"city={person.current.city}"]
    return args


def crawl(spider: str, person, env: dict, sandbox: dict, *extra: str, timeout: float = 240, fresh: bool = True):
    scan_id = str(uuid.uuid4())
    if fresh:  # each test is a new client: the sites' rate windows start afresh (earlier tests used them)
        for site in ("fastpeople", "thatsthem"):
            assert http(f"{sandbox[site]}/_sandbox/config", data={}).status == 200
    env = dict(
        env,
        SITES_BASE_URLS=",".join(f"{s}={sandbox[s]}" for s in ("fastpeople", "thatsthem")),
        SCREENSHOTS_ENABLED="false",
        LOG_LEVEL="INFO",
    )
    result = run_scrapy(["crawl", spider, *person_args(person), "-a", f"scan_id={scan_id}", *extra], env, timeout)
    return scan_id, result


def listing_urls(db, scan_id: str) -> set[str]:
    """The (decrypted) listing URLs of the scan's findings."""
    from crawler.security.context import finding_listing_url

    ring = crawl_keyring()
    rows = db.execute("SELECT listing_url_ciphertext FROM findings WHERE scan_id = %s", (scan_id,)).fetchall()
    return {ring.decrypt_text(row[0], finding_listing_url(scan_id)) for row in rows}


def stats(log: str) -> dict:
    """The numeric lines of Scrapy's closing stats dump."""
    out = {}
    for raw_line in log.splitlines():
        line = raw_line.strip().strip(",{}")
        if line.startswith("'") and "':" in line:
            key, _, value = line.partition("':")
            value = value.strip().rstrip(",")
            if value.replace(".", "", 1).isdigit():
                out[key.strip("'")] = float(value)
    return out


@contextmanager
def site_config(base: str, **changes):
    """Reconfigure a sandbox site for the block, then restore its configuration."""
    before = http(f"{base}/_sandbox/config").json()
    reply = http(f"{base}/_sandbox/config", data=changes)
    assert reply.status == 200, reply.body
    try:
        yield
    finally:
        http(f"{base}/_sandbox/config", data={k: before[k] for k in changes})


def counters(db, scan_id: str) -> tuple[str, dict]:
    status, value = db.execute("SELECT status, counters FROM scans WHERE id = %s", (scan_id,)).fetchone()
    return status, value if isinstance(value, dict) else json.loads(value)


def summary(log: str, site: str) -> str:
    """The spider's closing line for the site: "candidates N, details N, listings N, pages N, ..."."""
    match = re.search(rf"\[spiders\.broker\] INFO: {site}: (.*)", log)
    assert match, log[-3000:]
    return match.group(1)
