"""A real scrapyd for the tests (tests/e2e/test_scrapyd.py, tests/worker/test_worker_scrapyd.py): started
with scrapyd/scrapyd.conf on a free port, the project deployed with scrapyd-deploy, jobs followed over
its HTTP API, and what it leaves behind (its log and files, the process list) read back.

Here rather than in tests/e2e so that tests of other directories import it (tests/ is on sys.path)."""

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
from collections.abc import Iterator
from configparser import ConfigParser
from pathlib import Path

import pytest

import crawler.settings
from support import ROOT, http

PROJECT = "crawler"
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


@contextlib.contextmanager
def running_scrapyd(tmp_path: Path, environment: dict[str, str], **options: str) -> Iterator[Scrapyd]:
    """scrapyd 1.6 on a free port, run (as `make scrapyd` does) in a directory holding
    a copy of scrapyd/scrapyd.conf: scrapyd reads ./scrapyd.conf and has no option for it.
    ``environment`` (the database, keys, secrets) is scrapyd's, which its jobs inherit;
    ``options`` override scrapyd.conf's (max_proc="1": one crawl at a time)."""
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
    conf["scrapyd"].update(options)
    with open(rundir / "scrapyd.conf", "w") as file:
        conf.write(file)
    # No other project setting in scrapyd's environment (jobs inherit it): the rest come from
    # schedule.json. No PYTHONPATH and a directory outside the repository: jobs import the deployed egg.
    drop = {name for name in dir(crawler.settings) if name.isupper()} | {"PYTHONPATH", "SCRAPY_SETTINGS_MODULE"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("SCRAPYD_")}
    env.update(environment)
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


def list_jobs(server: Scrapyd) -> dict:
    """listjobs.json of the project: {"pending": [...], "running": [...], "finished": [...]}."""
    return http(server.url + f"listjobs.json?project={PROJECT}").json()


def wait_finished(server: Scrapyd, jobs: set[str]) -> dict[str, dict]:
    deadline = time.monotonic() + JOBS_TIMEOUT
    while True:
        finished = {job["id"]: job for job in list_jobs(server)["finished"]}
        if jobs <= finished.keys():
            return {job: finished[job] for job in jobs}
        if server.process.poll() is not None:
            server.fail("scrapyd exited")
        if time.monotonic() > deadline:
            server.fail(f"jobs not finished after {JOBS_TIMEOUT} s: {sorted(jobs - finished.keys())}")
        time.sleep(0.25)


def job_log(server: Scrapyd, job: dict) -> str:
    with urllib.request.urlopen(urllib.parse.urljoin(server.url, job["log_url"]), timeout=10) as reply:
        return reply.read().decode(errors="replace")


def session_processes(session: int) -> str:
    """Full command lines (-ww: never cut) of every process in scrapyd's session (scrapyd, its crawls)."""
    result = subprocess.run(["ps", "-eww", "-o", "sid=,args="], capture_output=True, text=True, check=True)
    return "\n".join(
        line.split(None, 1)[1] for line in result.stdout.splitlines() if line.split(None, 1)[0] == str(session)
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
