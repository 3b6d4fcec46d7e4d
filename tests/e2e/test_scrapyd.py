"""The project under the real scrapyd: deployed with scrapyd-deploy (the egg setup.py
builds), spiders listed, `events` and `example` scheduled over HTTP with their settings
in schedule.json, rows in PostgreSQL afterwards."""

from __future__ import annotations

import contextlib
import json
import os
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
    def __init__(self, process: subprocess.Popen, url: str, output: Path):
        self.process, self.url, self.output = process, url, output

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def fail(self, message: str):
        pytest.fail(f"{message}\n--- scrapyd output (last 4000 chars) ---\n{self.log()[-4000:]}")


@pytest.fixture
def scrapyd(tmp_path):
    """scrapyd 1.6 on a free port, run (as `make scrapyd` does) in a directory holding
    a copy of scrapyd/scrapyd.conf: scrapyd reads ./scrapyd.conf and has no option for it."""
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
    # No project setting in scrapyd's environment (jobs inherit it): they come from schedule.json
    # alone. No PYTHONPATH and a directory outside the repository: jobs import the deployed egg.
    drop = {name for name in dir(crawler.settings) if name.isupper()} | {"PYTHONPATH", "SCRAPY_SETTINGS_MODULE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SCRAPYD_")}
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
    server = Scrapyd(process, f"http://127.0.0.1:{port}/", output)
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


def test_deployed_with_scrapyd_deploy_and_scheduled_over_http(scrapyd, sandbox, own_database_url, tmp_path):
    response = deploy(scrapyd, tmp_path)
    source_spiders = SpiderLoader.from_settings(Settings({"SPIDER_MODULES": crawler.settings.SPIDER_MODULES})).list()
    assert response["status"] == "ok" and response["spiders"] == len(source_spiders), response
    listed = http(scrapyd.url + f"listspiders.json?project={PROJECT}").json()
    assert sorted(listed["spiders"]) == sorted(source_spiders), listed

    http(f"{sandbox['events']}/events/config", data={"defaults": True})  # earlier tests' settings don't carry over
    settings = {
        "DATABASE_URL": own_database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "CRAWLER_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
        "CRAWLER_BLIND_INDEX_KEY": BLIND_INDEX_KEY,
        "EVENTS_API_KEY": "sandbox-key",
    }
    source, scan_id = f"scrapyd-{uuid.uuid4().hex[:8]}", str(uuid.uuid4())
    events_job = schedule(scrapyd, "events", settings, base_url=sandbox["events"], source=source)
    example_job = schedule(
        scrapyd,
        "example",
        settings,
        first_name="John",
        last_name="Smith",
        state="IL",
        scan_id=scan_id,
        base_url=sandbox["directory"],
    )

    finished = wait_finished(scrapyd, {events_job, example_job})

    scrapyd_log = scrapyd.log()
    for job, spider in ((events_job, "events"), (example_job, "example")):
        ended = f"Process finished: project='{PROJECT}' spider='{spider}' job='{job}'"  # exit code 0
        assert ended in scrapyd_log, scrapyd_log[-4000:]
        with urllib.request.urlopen(urllib.parse.urljoin(scrapyd.url, finished[job]["log_url"]), timeout=10) as reply:
            log = reply.read().decode(errors="replace")
        assert "Traceback" not in log and "] ERROR:" not in log, log[-4000:]
        assert "'finish_reason': 'finished'" in log, log[-4000:]

    with psycopg.connect(own_database_url) as conn:
        events = conn.execute("SELECT count(*), count(DISTINCT id) FROM events WHERE source = %s", (source,)).fetchone()
        scan = conn.execute("SELECT status, spider FROM scans WHERE id = %s", (scan_id,)).fetchone()
        findings = conn.execute("SELECT count(*) FROM findings WHERE scan_id = %s", (scan_id,)).fetchone()[0]
    assert events == (EVENTS_TOTAL, EVENTS_TOTAL)
    assert scan == ("completed", "example")
    assert findings > 0
