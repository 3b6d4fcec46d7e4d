"""Real `scrapy crawl example` runs against the sandbox, asserting on database rows and logs."""

import json
import subprocess
import uuid

import pytest

from crawler.security.context import finding_listing_url as listing_url_aad
from crawler.security.context import finding_value as value_aad
from crawler.security.keyring import KeyRing, parse_blind_index_key, parse_encryption_keys
from sandbox.population import default_population
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, options


def ring():
    return KeyRing(parse_encryption_keys(ENCRYPTION_KEYS), parse_blind_index_key(BLIND_INDEX_KEY))


@pytest.fixture(scope="module")
def target():
    """A person with namesakes elsewhere, searched with their state."""
    population = default_population()
    for person in population.people:
        namesakes = population.search(person.first_name, person.last_name)
        states = {p.addresses[0].state for p in namesakes}
        if len(namesakes) >= 3 and len(states) >= 2 and person.emails and person.phones:
            return person
    pytest.fail("the population has no namesakes to test with")


def example_person(person, scan_id: str, sandbox) -> list[str]:
    """The example spider's arguments for a sandbox person, searched in their first state."""
    values = {"first_name": person.first_name, "last_name": person.last_name, "state": person.addresses[0].state}
    return options({**values, "scan_id": scan_id, "base_url": sandbox["directory"]})


def crawl_target(scrapy_cmd, crawl_env, sandbox, person, *extra):
    scan_id = str(uuid.uuid4())
    result = scrapy_cmd(
        [
            "crawl",
            "example",
            *example_person(person, scan_id, sandbox),
            *extra,
        ],
        crawl_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return scan_id, result


def test_crawl_writes_encrypted_findings_for_the_right_people(scrapy_cmd, crawl_env, sandbox, db, target):
    scan_id, _ = crawl_target(scrapy_cmd, crawl_env, sandbox, target)
    population = default_population()
    expected = [
        p
        for p in population.search(target.first_name, target.last_name)
        if p.addresses[0].state == target.addresses[0].state
    ]
    status, counters = db.execute("SELECT status, counters FROM scans WHERE id = %s", (scan_id,)).fetchone()
    assert status == "completed"
    assert counters["directory"]["listings"] == len(expected)

    keys = ring()
    rows = db.execute(
        "SELECT data_type, value_ciphertext, listing_url_ciphertext FROM findings WHERE scan_id = %s", (scan_id,)
    ).fetchall()
    names = {keys.decrypt_text(v, value_aad(scan_id, "name")) for t, v, _ in rows if t == "name"}
    assert len(names) >= 1 and all(target.last_name in n for n in names)
    urls = {keys.decrypt_text(u, listing_url_aad(scan_id)) for _, _, u in rows}
    assert {u.rsplit("/", 1)[1] for u in urls} == {p.id for p in expected}
    emails = {keys.decrypt_text(v, value_aad(scan_id, "email")) for t, v, _ in rows if t == "email"}
    assert set(target.emails) <= emails


def test_a_second_run_of_the_same_scan_adds_no_rows(scrapy_cmd, crawl_env, sandbox, db, target):
    scan_id, _ = crawl_target(scrapy_cmd, crawl_env, sandbox, target)
    count = "SELECT count(*) FROM findings WHERE scan_id = %s"
    before = db.execute(count, (scan_id,)).fetchone()[0]
    again = scrapy_cmd(
        [
            "crawl",
            "example",
            *example_person(target, scan_id, sandbox),
        ],
        crawl_env,
    )
    assert again.returncode == 0
    assert before > 0 and db.execute(count, (scan_id,)).fetchone()[0] == before


def seeded_pii(person):
    population = default_population()
    values = [person.first_name, person.last_name, *person.emails]
    for phone in person.phones:
        values += [phone.number, f"{phone.number[3:6]}-{phone.number[6:]}"]
    for address in person.addresses:
        values.append(address.street)
    for relative_id in person.relatives:
        values.append(population.get(relative_id).last_name)
    return [v for v in values if v]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_seeded_pii_reaches_the_log(scrapy_cmd, crawl_env, sandbox, target, log_format):
    crawl_env["LOG_FORMAT"] = log_format
    _, result = crawl_target(scrapy_cmd, crawl_env, sandbox, target)
    log = result.stderr
    assert "Crawled (200)" in log and "Scraped from" in log  # DEBUG lines about every page and item
    if log_format == "json":
        assert all(json.loads(line) for line in log.splitlines() if line.strip())
    for value in seeded_pii(target):
        assert value.lower() not in log.lower(), f"a seeded {type(value).__name__} value leaked"


def test_no_seeded_pii_in_a_database_dump(scrapy_cmd, crawl_env, sandbox, database_url, target):
    crawl_target(scrapy_cmd, crawl_env, sandbox, target)
    dump = subprocess.run(["pg_dump", "--data-only", database_url], capture_output=True, text=True, check=True).stdout
    for value in seeded_pii(target):
        assert value.lower() not in dump.lower()
