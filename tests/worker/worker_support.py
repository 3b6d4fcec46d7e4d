"""Helpers of the worker tests: scans created and queued as the API does, workers as processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

from crawler.store import jobs
from sandbox.population import default_population, ground_truth
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, ROOT, created_scan_id, http

SITE = "fastpeople"


def worker_env(database_url: str, sandbox: dict, tmp_path: Path, **settings) -> dict:
    """Environment of a worker (its crawls inherit it): the test database, fixed keys, the sandbox."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_FILE", "LOG_FORMAT", "SCRAPYD_URLS")}
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path / "data"),
        CRAWLER_ENCRYPTION_KEYS=ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=BLIND_INDEX_KEY,
        SITES_BASE_URLS=f"{SITE}={sandbox[SITE]}",
        SCREENSHOTS_ENABLED="false",
        LOG_LEVEL="INFO",
        WORKER_CONCURRENCY="1",
        SCAN_RETRY_SECONDS="0.5",
        WORKER_STALLED_SECONDS="4",
    )
    env.update({k: str(v) for k, v in settings.items()})
    return env


def target():
    """A person listed on the site whose name-and-state search there finds one or two candidates."""
    from sandbox.brokers import fastpeople
    from sandbox.brokers.common import is_listed

    population = default_population()
    for person in population.people:
        if SITE not in ground_truth(person) or not person.emails:
            continue
        state = person.current.state
        found = [
            p
            for p in population.search(person.first_name, person.last_name, state=state)
            if any(a.state == state for a in p.addresses) and is_listed(SITE, p, fastpeople.SHARE)
        ]
        if 1 <= len(found) <= 2:
            return person
    raise AssertionError("no suitable target in the population")


def create_scan(env: dict, person) -> str:
    """`python -m crawler.store create-scan --sites fastpeople` (the person on stdin): a pending scan."""
    document = {
        "first_name": person.first_name,
        "last_name": person.last_name,
        "state": person.current.state,
        "age": person.age,
        "emails": person.emails[:1],
    }
    return created_scan_id(env, document, "--sites", SITE)


def create_broken_scan(url: str) -> str:
    """A pending scan without a stored target: its crawl exits 2 at once (a crash, cheaply)."""
    scan_id = str(uuid.uuid4())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO scans (id, status, spider, sites) VALUES (%s, 'pending', 'scan', %s)", (scan_id, [SITE])
        )
    return scan_id


async def _in_transaction(url: str, work):
    async with await psycopg.AsyncConnection.connect(url) as conn, conn.transaction():
        return await work(conn)


def defer(url: str, scan_id: str, priority: str = "normal") -> int:
    return asyncio.run(_in_transaction(url, lambda conn: jobs.defer_scan_job(conn, scan_id, priority)))


def cancel(url: str, scan_id: str) -> str:
    return asyncio.run(_in_transaction(url, lambda conn: jobs.cancel_scan(conn, scan_id)))


def scan_row(url: str, scan_id: str) -> dict:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(
            "SELECT status, error, attempts, job_id, started_at, finished_at, cancel_requested_at, counters "
            "FROM scans WHERE id = %s",
            (scan_id,),
        )
        row = cursor.fetchone()
        return dict(zip([c.name for c in cursor.description], row, strict=True))


def job_row(url: str, job_id: int) -> dict:
    with psycopg.connect(url) as conn:
        cursor = conn.execute(
            "SELECT status::text, attempts, abort_requested FROM procrastinate_jobs WHERE id = %s", (job_id,)
        )
        return dict(zip([c.name for c in cursor.description], cursor.fetchone(), strict=True))


def query(url: str, sql: str, params=()) -> list:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, params).fetchall()


class Worker:
    """`python -m crawler.worker` in its own session, its output in a file."""

    def __init__(self, env: dict, log: Path):
        self.log_path = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "crawler.worker"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait(self, timeout: float = 120) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        # crawls die with the worker (PR_SET_PDEATHSIG); anything left of its session goes too
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)


def wait_for(condition, what: str, timeout: float = 180, worker: Worker | None = None, interval: float = 0.2):
    """Poll ``condition()`` until it returns something truthy; fail with the worker's log otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if worker is not None and worker.process.poll() is not None:
            raise AssertionError(
                f"worker exited ({worker.process.returncode}) waiting for {what}\n{worker.log()[-4000:]}"
            )
        if time.monotonic() > deadline:
            log = worker.log()[-4000:] if worker is not None else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{log}")
        time.sleep(interval)


def set_rate_limit(sandbox: dict, per_minute: int) -> None:
    """The site's requests per minute per client (0: off); the rate windows start afresh."""
    assert http(f"{sandbox[SITE]}/_sandbox/config", data={"rate_limit_per_minute": per_minute}).status == 200


def rate_limited(sandbox: dict) -> int:
    """Requests the site has refused for its rate limit so far."""
    return int(http(f"{sandbox[SITE]}/_sandbox/stats").json()["counters"].get("rate_limited", 0))


def crawl_processes(scan_id: str, worker: Worker) -> list[int]:
    """Pids of live crawls of the scan: started as a command line holding the scan id, or forked by
    the worker's fork server (its log names the pid)."""
    import re

    result = subprocess.run(["ps", "-eww", "-o", "pid=,stat=,args="], capture_output=True, text=True, check=True)
    forked = {int(p) for p in re.findall(rf"scan {scan_id}: crawl started \(pid (\d+), forked\)", worker.log())}
    pids = []
    for line in result.stdout.splitlines():
        pid, stat, args = line.split(None, 2) if len(line.split(None, 2)) == 3 else (*line.split(None, 1), "")
        if stat.startswith("Z"):
            continue
        if int(pid) in forked or (f"scan_id={scan_id}" in args and "crawl" in args):
            pids.append(int(pid))
    return pids
