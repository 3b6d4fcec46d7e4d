"""crawler.store.scans and `python -m crawler.store create-scan`: a scan created with its target
encrypted, run by id alone; the one-line errors of bad input, a missing scan and scrapyd jobs that
carry a person or a secret in their arguments."""

import asyncio
import json
import uuid

import psycopg
import pytest

from crawler.db.pool import close_pools
from crawler.security.context import scan_target
from crawler.spider_args import PersonQuery
from crawler.store import scans as store
from sandbox.population import default_population
from support import crawl_keyring, run_create_scan, store_settings

pytestmark = pytest.mark.e2e


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def target():
    """A directory person with namesakes elsewhere, an e-mail and a phone."""
    population = default_population()
    for person in population.people:
        namesakes = population.search(person.first_name, person.last_name)
        if len(namesakes) >= 2 and person.emails and person.phones and person.age:
            return person
    pytest.fail("no person to test with")


def person_json(person) -> dict:
    return {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "state": person.addresses[0].state,
        "age": person.age,
        "emails": person.emails[:1],
        "phones": [p.number for p in person.phones[:1]],
    }


def test_created_scan_is_pending_with_its_target_encrypted_and_runs_by_id(scrapy_cmd, crawl_env, sandbox, db, target):
    created = run_create_scan(crawl_env, person_json(target), "--spider", "example")
    assert created.returncode == 0, created.stderr[-2000:]
    scan_id = created.stdout.strip().splitlines()[-1]
    assert str(uuid.UUID(scan_id)) == scan_id
    status, spider, sites, ciphertext, name_index = db.execute(
        "SELECT status, spider, sites, target_ciphertext, target_name_index FROM scans WHERE id = %s", (scan_id,)
    ).fetchone()
    assert (status, spider, sites) == ("pending", "example", ["directory"])
    stored = json.loads(crawl_keyring().decrypt_text(ciphertext, scan_target(scan_id)))
    assert stored["first_name"] == target.first_name and stored["age"] == target.age
    assert stored["email"] == target.emails[0].lower() and stored["phone"].startswith("+1")
    assert name_index == crawl_keyring().blind_index(f"{target.first_name} {target.last_name}")
    assert target.last_name.encode() not in bytes(ciphertext)

    result = scrapy_cmd(
        ["crawl", "example", "-a", f"scan_id={scan_id}", "-a", f"base_url={sandbox['directory']}"], crawl_env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert db.execute("SELECT status FROM scans WHERE id = %s", (scan_id,)).fetchone() == ("completed",)
    assert db.execute("SELECT count(*) FROM findings WHERE scan_id = %s", (scan_id,)).fetchone()[0] > 0


@pytest.mark.parametrize(
    ("person", "options", "expected"),
    [
        ("{not json", (), "error: person: not valid JSON on stdin"),
        ('["Zebulon"]', (), "error: person: expected a JSON object"),
        ({"first_name": "Zebul0n", "last_name": "Quixley"}, (), "error: first_name: expected letters"),
        ({"first_name": "Zebulon"}, (), "error: last_name: required"),
        ({"first_name": "Zebulon", "last_name": "Quixley", "age": 7}, (), "error: age: expected a whole number"),
        ({"first_name": "Zebulon", "last_name": "Quixley", "emails": ["zeb@"]}, (), "error: email: not a valid"),
        (
            {"first_name": "Zebulon", "last_name": "Quixley", "phones": ["312-555-0101", "312-555-0102"]},
            (),
            "error: phones: at most one value",
        ),
        ({"first_name": "Zebulon", "last_name": "Quixley", "ssn": "1"}, (), "error: ssn: unknown field"),
        ({"first_name": "Zebulon", "last_name": "Quixley"}, ("--sites", "nope"), "error: sites: unknown site 'nope'"),
        ({"first_name": "Zebulon", "last_name": "Quixley"}, ("--spider", "nope"), "error: --spider: unknown spider"),
        ({"first_name": "Zebulon", "last_name": "Quixley"}, ("--spider", "events"), "error: --spider: 'events'"),
    ],
)
def test_create_scan_refuses_bad_input_in_one_line_naming_the_field(crawl_env, db, person, options, expected):
    before = db.execute("SELECT count(*) FROM scans").fetchone()[0]
    result = run_create_scan(crawl_env, person, *options)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    for value in ("Zebul0n", "zeb@", "312-555"):
        assert value not in result.stderr
    assert db.execute("SELECT count(*) FROM scans").fetchone()[0] == before


def test_scan_id_without_a_stored_scan_or_for_another_spider(scrapy_cmd, crawl_env):
    missing = str(uuid.uuid4())
    result = scrapy_cmd(["crawl", "scan", "-a", f"scan_id={missing}"], crawl_env)
    assert result.returncode == 2 and error_lines(result) == [f"error: -a scan_id: no such scan {missing}"]

    created = run_create_scan(crawl_env, {"first_name": "Zebulon", "last_name": "Quixley"}, "--spider", "example")
    scan_id = created.stdout.strip().splitlines()[-1]
    result = scrapy_cmd(["crawl", "scan", "-a", f"scan_id={scan_id}"], crawl_env)
    assert result.returncode == 2
    assert error_lines(result) == [f"error: -a scan_id: scan {scan_id} was created for spider 'example', not 'scan'"]


def test_scan_row_without_target(scrapy_cmd, crawl_env, db):
    scan_id = str(uuid.uuid4())
    db.execute("INSERT INTO scans (id, spider) VALUES (%s, 'scan')", (scan_id,))
    result = scrapy_cmd(["crawl", "scan", "-a", f"scan_id={scan_id}"], crawl_env)
    assert result.returncode == 2
    assert error_lines(result) == [f"error: -a scan_id: scan {scan_id} has no stored target"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["crawl", "example", "-a", "_job=j1", "-a", "first_name=Zebulon", "-a", "last_name=Quixley"],
            "error: -a first_name: personal data does not belong in job arguments: "
            "create the scan (python -m crawler.store create-scan) and pass scan_id",
        ),
        (
            ["crawl", "scan", "-a", "_job=j1", "-a", f"scan_id={uuid.uuid4()}", "-a", "phone=3125550101"],
            "error: -a phone: personal data does not belong in job arguments: "
            "create the scan (python -m crawler.store create-scan) and pass scan_id",
        ),
        (
            ["crawl", "events", "-a", "_job=j1", "-a", "base_url=http://127.0.0.1:9", "-a", "api_key=hidden-key"],
            "error: -a api_key: secrets do not belong in job arguments: set EVENTS_API_KEY in scrapyd's environment",
        ),
    ],
)
def test_a_scrapyd_job_refuses_personal_arguments_and_secrets(scrapy_cmd, crawl_env, args, expected):
    """scrapyd passes its job id as ``-a _job=...``; shell crawls (no _job) keep these arguments."""
    result = scrapy_cmd(args, crawl_env)
    assert result.returncode == 2
    assert error_lines(result) == [expected]
    for value in ("Zebulon", "Quixley", "3125550101", "hidden-key"):
        assert value not in result.stderr


def test_store_functions_round_trip(database_url, tmp_path):
    settings = store_settings(database_url, tmp_path)
    query = PersonQuery("Zebulon", "Quixley", city="Springfield", state="IL", age=44, email="zq@example.org")

    async def scenario():
        try:
            scan_id = await store.create_scan(settings, query, "scan", ["fastpeople", "thatsthem"])
            assert (await store.load_scan(settings, scan_id)).query == query
            assert await store.load_scan(settings, str(uuid.uuid4())) is None
            await store.start_scan(settings, scan_id, "scan", query, ["fastpeople", "thatsthem"])
            await store.update_counters(settings, scan_id, {"fastpeople": {"listings": 2}})
            running = await store.load_scan(settings, scan_id)
            await store.finish_scan(settings, scan_id, "completed", None, {"fastpeople": {"listings": 3}})
            # finished: progress no longer moves the counters
            await store.update_counters(settings, scan_id, {"fastpeople": {"listings": 9}})
            return scan_id, running, await store.load_scan(settings, scan_id)
        finally:
            await close_pools()

    scan_id, running, finished = asyncio.run(scenario())
    assert (running.status, running.spider, running.sites) == ("running", "scan", ["fastpeople", "thatsthem"])
    assert finished.status == "completed" and finished.query == query
    assert store.load_scan_sync(settings, scan_id).query == query
    with psycopg.connect(database_url) as conn:
        counters = conn.execute("SELECT counters FROM scans WHERE id = %s", (scan_id,)).fetchone()[0]
    assert counters == {"fastpeople": {"listings": 3}}
