"""The project under the real scrapyd: deployed with scrapyd-deploy (the egg setup.py
builds), spiders listed, `events`, `example` and `scan` scheduled over HTTP with ids only
(the person stored beforehand with `python -m crawler.store create-scan`, secrets in
scrapyd's environment), rows in PostgreSQL afterwards; and nothing personal or secret in
scrapyd's log, its files, its database or the process list."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from broker_support import target
from scrapy.settings import Settings
from scrapy.spiderloader import SpiderLoader
from scrapyd_support import (
    JOBS_TIMEOUT,
    PROJECT,
    Scrapyd,
    deploy,
    found,
    job_log,
    running_scrapyd,
    scrapyd_files,
    session_processes,
    wait_finished,
)

import crawler.settings
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, created_scan_id, http

# builds its egg in the repository with scrapyd-deploy: kept apart from test_egg.py (see there)
pytestmark = pytest.mark.xdist_group("repository_build")

EVENTS_TOTAL = 20000  # the session sandbox's --events-count

# the sandbox's events API key: a secret that must reach the events spider from the environment only
EVENTS_KEY = "sandbox-key"


@pytest.fixture
def scrapyd(tmp_path, own_database_url, sandbox):
    """scrapyd (tests/scrapyd_support.py) with the database, keys and API key in its environment,
    which its jobs inherit."""
    environment = {
        "DATABASE_URL": own_database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "CRAWLER_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
        "CRAWLER_BLIND_INDEX_KEY": BLIND_INDEX_KEY,
        "EVENTS_API_KEY": EVENTS_KEY,
    }
    with running_scrapyd(tmp_path, environment) as server:
        yield server


def schedule(server: Scrapyd, spider: str, settings: dict, **args) -> str:
    fields = [("project", PROJECT), ("spider", spider)]
    fields += [("setting", f"{name}={value}") for name, value in settings.items()]
    fields += list(args.items())
    response = http(server.url + "schedule.json", form=fields).json()
    assert response["status"] == "ok", response
    return response["jobid"]


def test_deployed_with_scrapyd_deploy_and_scheduled_over_http(scrapyd, sandbox, own_database_url, tmp_path):
    response = deploy(scrapyd, tmp_path)
    source_spiders = SpiderLoader.from_settings(Settings({"SPIDER_MODULES": crawler.settings.SPIDER_MODULES})).list()
    assert response["status"] == "ok" and response["spiders"] == len(source_spiders), response
    listed = http(scrapyd.url + f"listspiders.json?project={PROJECT}").json()
    assert sorted(listed["spiders"]) == sorted(source_spiders), listed

    http(f"{sandbox['events']}/events/config", data={"defaults": True})  # earlier tests' settings don't carry over
    # settings as schedule.json fields (setting=NAME=value); secrets are in scrapyd's environment, not here
    settings = {"EVENTS_PROGRESS_SECONDS": "30"}
    scan_id = created_scan_id(
        scrapyd.env, {"first_name": "John", "last_name": "Smith", "state": "IL"}, "--spider", "example"
    )
    source = f"scrapyd-{uuid.uuid4().hex[:8]}"
    events_job = schedule(scrapyd, "events", settings, base_url=sandbox["events"], source=source)
    example_job = schedule(scrapyd, "example", {}, scan_id=scan_id, base_url=sandbox["directory"])

    finished = wait_finished(scrapyd, {events_job, example_job})

    scrapyd_log = scrapyd.log()
    for job, spider in ((events_job, "events"), (example_job, "example")):
        ended = f"Process finished: project='{PROJECT}' spider='{spider}' job='{job}'"  # exit code 0
        assert ended in scrapyd_log, scrapyd_log[-4000:]
        log = job_log(scrapyd, finished[job])
        assert "Traceback" not in log and "] ERROR:" not in log, log[-4000:]
        assert "'finish_reason': 'finished'" in log, log[-4000:]
    assert EVENTS_KEY not in scrapyd_log and "Smith" not in scrapyd_log

    with psycopg.connect(own_database_url) as conn:
        events = conn.execute("SELECT count(*), count(DISTINCT id) FROM events WHERE source = %s", (source,)).fetchone()
        scan = conn.execute("SELECT status, spider FROM scans WHERE id = %s", (scan_id,)).fetchone()
        findings = conn.execute("SELECT count(*) FROM findings WHERE scan_id = %s", (scan_id,)).fetchone()[0]
    assert events == (EVENTS_TOTAL, EVENTS_TOTAL)
    assert scan == ("completed", "example")
    assert findings > 0


def text_columns(database_url: str) -> str:
    """Every row of every table of the project database, as text (bytea as hex)."""
    with psycopg.connect(database_url) as conn:
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
            ).fetchall()
        ]
        return "\n".join(
            row[0] for table in tables for row in conn.execute(f'SELECT t::text FROM "{table}" t').fetchall()
        )


def test_a_scan_scheduled_by_id_leaves_nothing_personal_or_secret_behind(scrapyd, sandbox, own_database_url, tmp_path):
    """The issue's leak: the person travels only inside the scans row, encrypted; the API key only in
    scrapyd's environment. Sampled: the process list while the crawl runs; read afterwards: scrapyd's
    log, files and databases, and every row of the project database."""
    person = next(
        p
        for skip in range(20)
        if len((p := target("fastpeople", 1, 3, skip=skip)).first_name) >= 4 and len(p.last_name) >= 4
    )
    phone = person.phones[0].number
    seeded = {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "state": person.current.state,
        "age": person.age,
        "emails": person.emails[:1],
        "phones": [phone],
    }
    assert http(f"{sandbox['fastpeople']}/_sandbox/config", data={}).status == 200  # the site's limits afresh
    scan_id = created_scan_id(scrapyd.env, seeded, "--sites", "fastpeople")
    deploy(scrapyd, tmp_path)

    # not secret: the sandbox's address comes with the job
    settings = {"SITES_BASE_URLS": f"fastpeople={sandbox['fastpeople']}", "SCREENSHOTS_ENABLED": "false"}
    job = schedule(scrapyd, "scan", {**settings, "LOG_LEVEL": "DEBUG"}, scan_id=scan_id)
    processes, deadline = [], time.monotonic() + JOBS_TIMEOUT
    while time.monotonic() < deadline:
        running = http(scrapyd.url + f"listjobs.json?project={PROJECT}").json()
        processes.append(session_processes(scrapyd.process.pid))
        if any(j["id"] == job for j in running["finished"]):
            break
        time.sleep(0.2)
    finished = wait_finished(scrapyd, {job})
    assert any(f"scan_id={scan_id}" in p for p in processes), processes[-3:]  # the crawl was seen running

    log = job_log(scrapyd, finished[job])
    assert "'finish_reason': 'finished'" in log and "Traceback" not in log, log[-4000:]
    with psycopg.connect(own_database_url) as conn:
        status = conn.execute("SELECT status FROM scans WHERE id = %s", (scan_id,)).fetchone()[0]
        findings = conn.execute("SELECT count(*) FROM findings WHERE scan_id = %s", (scan_id,)).fetchone()[0]
    assert status == "completed" and findings > 0

    secrets = {
        "first name": person.first_name,
        "last name": person.last_name,
        "e-mail": person.emails[0],
        "phone": phone,
        "phone digits": "".join(ch for ch in phone if ch.isdigit())[-10:],
        "API key": EVENTS_KEY,
    }
    places = {
        "ps output": "\n".join(processes),
        "scrapyd's log and files": scrapyd_files(scrapyd),
        "the project database": text_columns(own_database_url),
    }
    leaks = [
        f"{what} in {where}" for where, text in places.items() for what, value in secrets.items() if found(value, text)
    ]
    assert leaks == []


def test_a_job_with_personal_arguments_fails_with_one_line_naming_the_argument(scrapyd, sandbox, tmp_path):
    deploy(scrapyd, tmp_path)
    job = schedule(scrapyd, "example", {}, first_name="Zebulon", last_name="Quixley", base_url=sandbox["directory"])
    wait_finished(scrapyd, {job})
    log = scrapyd.log()
    assert f"Process died: exitstatus=2 project='{PROJECT}' spider='example' job='{job}'" in log, log[-4000:]
    errors = [line for line in log.splitlines() if "/stderr]" in line and "error: " in line]
    assert len(errors) == 1, log[-4000:]
    assert errors[0].endswith(
        "error: -a first_name: personal data does not belong in job arguments: "
        "create the scan (python -m crawler.store create-scan) and pass scan_id"
    ), errors
