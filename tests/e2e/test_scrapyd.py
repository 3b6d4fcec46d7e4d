"""The project under the real scrapyd: deployed with scrapyd-deploy (the egg setup.py
builds), spiders listed, `events`, `example` and `scan` scheduled over HTTP with ids only
(the person stored beforehand with `python -m crawler.store create-scan`, secrets in
scrapyd's environment), rows in PostgreSQL afterwards; and nothing personal or secret in
scrapyd's log, its files, its database or the process list."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from configparser import ConfigParser
from pathlib import Path

import psycopg
import pytest
from broker_support import target
from scrapy.settings import Settings
from scrapy.spiderloader import SpiderLoader

import crawler.settings
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, ROOT, http

# builds its egg in the repository with scrapyd-deploy: kept apart from test_egg.py (see there)
pytestmark = pytest.mark.xdist_group("repository_build")

PROJECT = "crawler"
EVENTS_TOTAL = 20000  # the session sandbox's --events-count
JOBS_TIMEOUT = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Scrapyd:
    def __init__(self, process: subprocess.Popen, url: str, output: Path, rundir: Path, env: dict):
        self.process, self.url, self.output, self.rundir, self.env = process, url, output, rundir, env

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def fail(self, message: str):
        pytest.fail(f"{message}\n--- scrapyd output (last 4000 chars) ---\n{self.log()[-4000:]}")


# the sandbox's events API key: a secret that must reach the events spider from the environment only
EVENTS_KEY = "sandbox-key"


@pytest.fixture
def scrapyd(tmp_path, own_database_url, sandbox):
    """scrapyd 1.6 on a free port, run (as `make scrapyd` does) in a directory holding
    a copy of scrapyd/scrapyd.conf: scrapyd reads ./scrapyd.conf and has no option for it.
    The database, keys and API key are in scrapyd's environment, which its jobs inherit."""
    port = free_port()
    rundir = tmp_path / "scrapyd"
    rundir.mkdir()
    conf = ConfigParser()
    conf.read(ROOT / "scrapyd" / "scrapyd.conf")
    conf["scrapyd"].update(
        http_port=str(port),
        poll_interval="0.2",
        eggs_dir=str(rundir / "eggs"),
        logs_dir=str(rundir / "logs"),
        dbs_dir=str(rundir / "dbs"),
    )
    with open(rundir / "scrapyd.conf", "w") as file:
        conf.write(file)
    # No other project setting in scrapyd's environment (jobs inherit it): the rest come from
    # schedule.json. No PYTHONPATH and a directory outside the repository: jobs import the deployed egg.
    drop = {name for name in dir(crawler.settings) if name.isupper()} | {"PYTHONPATH", "SCRAPY_SETTINGS_MODULE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SCRAPYD_")}
    env.update(
        DATABASE_URL=own_database_url,
        DATA_DIR=str(tmp_path / "data"),
        CRAWLER_ENCRYPTION_KEYS=ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=BLIND_INDEX_KEY,
        EVENTS_API_KEY=EVENTS_KEY,
    )
    output = tmp_path / "scrapyd.out"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "scrapyd", "--pidfile="],
            cwd=rundir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Scrapyd(process, f"http://127.0.0.1:{port}/", output, rundir, env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if http(server.url + "daemonstatus.json").json()["status"] == "ok":
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                server.fail("scrapyd did not start")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        # crawls still running (a failed test) are in scrapyd's process group
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def deploy(server: Scrapyd, tmp_path: Path) -> dict:
    """`scrapyd-deploy e2e` from the repository root; the target is in a user-level scrapy.cfg."""
    config_home = tmp_path / "xdg"
    config_home.mkdir()
    (config_home / "scrapy.cfg").write_text(f"[deploy:e2e]\nurl = {server.url}\nproject = {PROJECT}\n")
    result = subprocess.run(
        [str(Path(sys.executable).with_name("scrapyd-deploy")), "e2e", "--version", f"e2e-{uuid.uuid4().hex[:8]}"],
        cwd=ROOT,
        env=dict(os.environ, XDG_CONFIG_HOME=str(config_home)),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def schedule(server: Scrapyd, spider: str, settings: dict, **args) -> str:
    fields = [("project", PROJECT), ("spider", spider)]
    fields += [("setting", f"{name}={value}") for name, value in settings.items()]
    fields += list(args.items())
    response = http(server.url + "schedule.json", form=fields).json()
    assert response["status"] == "ok", response
    return response["jobid"]


def wait_finished(server: Scrapyd, jobs: set[str]) -> dict[str, dict]:
    deadline = time.monotonic() + JOBS_TIMEOUT
    while True:
        finished = {job["id"]: job for job in http(server.url + f"listjobs.json?project={PROJECT}").json()["finished"]}
        if jobs <= finished.keys():
            return {job: finished[job] for job in jobs}
        if server.process.poll() is not None:
            server.fail("scrapyd exited")
        if time.monotonic() > deadline:
            server.fail(f"jobs not finished after {JOBS_TIMEOUT} s: {sorted(jobs - finished.keys())}")
        time.sleep(0.25)


def create_scan(env: dict, person: dict, *options: str) -> str:
    """`python -m crawler.store create-scan` (the person on stdin): the new scan's id."""
    result = subprocess.run(
        [sys.executable, "-m", "crawler.store", "create-scan", *options],
        cwd=ROOT,
        env=env,
        input=json.dumps(person),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def job_log(server: Scrapyd, job: dict) -> str:
    with urllib.request.urlopen(urllib.parse.urljoin(server.url, job["log_url"]), timeout=10) as reply:
        return reply.read().decode(errors="replace")


def test_deployed_with_scrapyd_deploy_and_scheduled_over_http(scrapyd, sandbox, own_database_url, tmp_path):
    response = deploy(scrapyd, tmp_path)
    source_spiders = SpiderLoader.from_settings(Settings({"SPIDER_MODULES": crawler.settings.SPIDER_MODULES})).list()
    assert response["status"] == "ok" and response["spiders"] == len(source_spiders), response
    listed = http(scrapyd.url + f"listspiders.json?project={PROJECT}").json()
    assert sorted(listed["spiders"]) == sorted(source_spiders), listed

    http(f"{sandbox['events']}/events/config", data={"defaults": True})  # earlier tests' settings don't carry over
    # settings as schedule.json fields (setting=NAME=value); secrets are in scrapyd's environment, not here
    settings = {"EVENTS_PROGRESS_SECONDS": "30"}
    scan_id = create_scan(
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


def session_processes(session: int) -> str:
    """Full command lines (-ww: never cut) of every process in scrapyd's session (scrapyd, its crawls)."""
    result = subprocess.run(["ps", "-eww", "-o", "sid=,args="], capture_output=True, text=True, check=True)
    return "\n".join(
        line.split(None, 1)[1] for line in result.stdout.splitlines() if line.split(None, 1)[0] == str(session)
    )


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


def scrapyd_files(server: Scrapyd) -> str:
    """What scrapyd wrote: its own log, job logs, its SQLite databases (queues, finished jobs) and
    any items or job directories; not the deployed egg (the project's code)."""
    texts = [server.log()]
    for path in sorted(server.rundir.rglob("*")):
        if path.is_file() and "eggs" not in path.relative_to(server.rundir).parts:
            texts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(texts)


def found(value: str, text: str) -> bool:
    """``value`` as a word of ``text`` (names case-sensitive, as stored; e-mails in any case)."""
    if "@" in value:
        return value.casefold() in text.casefold()
    return re.search(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", text) is not None


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
    scan_id = create_scan(scrapyd.env, seeded, "--sites", "fastpeople")
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
