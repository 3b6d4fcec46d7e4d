"""SIGTERM on real `scrapy crawl` processes: the first drains and exits 0, a second stops at once.

Slowness comes from the sandbox lab (``delay``: every answer waits) or from
DOWNLOAD_DELAY on the people directory; progress is read from the worker's own
/metrics (METRICS_PORT=0, the port taken from its log).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time
import urllib.request
import uuid

import psycopg
import redis
from lab_support import Tenant, fetch_command

from support import REDIS_URL, ROOT, SCRAPY, http, options

PORT_RE = re.compile(r"metrics and health on \S+ port (\d+)")
# pg/rows_written/<table> from Scrapy's stats dump at close
WRITTEN_RE = re.compile(r"'pg/rows_written/(\w+)': (\d+)")


class Worker:
    """A `scrapy` subprocess with its log in a file (read while it runs)."""

    def __init__(self, args: list[str], env: dict, tmp_path):
        self.log_path = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def port(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := PORT_RE.search(self.text()):
                return int(match.group(1))
            assert self.process.poll() is None, self.text()[-3000:]
            time.sleep(0.1)
        raise AssertionError("no metrics port in the log:\n" + self.text()[-3000:])

    def metric(self, name: str, labels: str = "") -> float:
        body = urllib.request.urlopen(f"http://127.0.0.1:{self.port()}/metrics", timeout=5).read().decode()
        match = re.search(rf"^{re.escape(name + labels)} (\S+)$", body, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def wait_metric(self, name: str, labels: str, at_least: float, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.metric(name, labels) < at_least:
            assert time.monotonic() < deadline and self.process.poll() is None, self.text()[-3000:]
            time.sleep(0.1)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


def lab_fetch(sandbox, tmp_path, env, count: int, concurrency: int, **config) -> tuple[Worker, Tenant]:
    tenant = Tenant(sandbox["lab"], **config)
    args = [
        *fetch_command(tenant.base, "json", count),
        "-a",
        "ratelimit_rps=1000",
        "-O",
        f"{tmp_path}/out.jsonl:jsonlines",
        "-s",
        "METRICS_PORT=0",
        "-s",
        f"CONCURRENT_REQUESTS={concurrency}",
        "-s",
        "LOG_LEVEL=INFO",
    ]
    return Worker(args, env, tmp_path), tenant


def arrivals(tenant: Tenant) -> int:
    return tenant.stats()["requests"]


def wait_arrivals(tenant: Tenant, worker: Worker, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while arrivals(tenant) < count:
        assert time.monotonic() < deadline and worker.process.poll() is None, worker.text()[-3000:]
        time.sleep(0.05)


def draining(worker: Worker, timeout: float = 60) -> None:
    """Wait until the worker logged that a SIGTERM started its drain."""
    deadline = time.monotonic() + timeout
    while "SIGTERM: finishing" not in worker.text():
        assert time.monotonic() < deadline and worker.process.poll() is None, worker.text()[-3000:]
        time.sleep(0.05)


def test_sigterm_finishes_requests_in_flight_and_exits_0(sandbox, crawl_env, tmp_path):
    worker, tenant = lab_fetch(sandbox, tmp_path, crawl_env, count=9, concurrency=3, delay=5)
    try:
        wait_arrivals(tenant, worker, 3)
        worker.port()
        signalled = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        # draining (the answers are seconds away): no longer healthy, so an orchestrator stops routing work here
        deadline = time.monotonic() + 30
        while (health := http(f"http://127.0.0.1:{worker.port()}/health")).status != 503:
            assert time.monotonic() < deadline and worker.process.poll() is None, worker.text()[-3000:]
            time.sleep(0.05)
        assert health.json()["checks"]["engine"]["ok"] is False
        assert worker.wait(timeout=60) == 0, worker.text()[-3000:]
    finally:
        worker.kill()
    log = worker.text()
    assert time.monotonic() - signalled >= 2  # it waited for the 5 s answers
    records = [line for line in (tmp_path / "out.jsonl").read_text().splitlines() if line]
    assert len(records) == 3 and all('"status": 200' in r for r in records), records
    assert arrivals(tenant) == 3  # nothing new was started after the signal
    assert "SIGTERM: finishing 3 request(s) in flight" in log
    assert "'finish_reason': 'shutdown'" in log and "'shutdown/drain_seconds'" in log


def test_second_sigterm_stops_at_once_with_exit_1(sandbox, crawl_env, tmp_path):
    worker, tenant = lab_fetch(sandbox, tmp_path, crawl_env, count=4, concurrency=4, delay=20)
    try:
        wait_arrivals(tenant, worker, 4)
        worker.process.send_signal(signal.SIGTERM)
        draining(worker)  # the first SIGTERM is handled: the second is not merged with it
        signalled = time.monotonic()
        worker.process.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=20)
        stopped_after = time.monotonic() - signalled
    finally:
        worker.kill()
    log = worker.text()
    assert code == 1, log[-3000:]
    assert stopped_after < 15, stopped_after  # not the 20 s the answers take
    assert "forcing unclean shutdown" in log and "stopped at once" in log


def scan_crawl(sandbox, env, tmp_path, scan_id: str) -> Worker:
    person = {"first_name": "John", "last_name": "Smith", "scan_id": scan_id, "base_url": sandbox["directory"]}
    settings = {
        # rows reach the database only when the writer flushes at close: the test sees that flush
        "PG_FLUSH_SECONDS": 600,
        "PG_BATCH_ROWS": 100000,
        "DOWNLOAD_DELAY": 0.3,
        "CONCURRENT_REQUESTS": 2,
        "METRICS_PORT": 0,
        "LOG_LEVEL": "INFO",
    }
    return Worker([*SCRAPY, "crawl", "example", *options(person, settings)], env, tmp_path)


def scan_rows(db, scan_id: str) -> int:
    return sum(
        db.execute(f"SELECT count(*) FROM {table} WHERE scan_id = %s", (scan_id,)).fetchone()[0]
        for table in ("findings", "rejected_candidates")
    )


def test_sigterm_mid_scan_writes_buffered_rows_and_marks_the_scan_cancelled(sandbox, crawl_env, tmp_path, db):
    scan_id = str(uuid.uuid4())
    worker = scan_crawl(sandbox, crawl_env, tmp_path, scan_id)
    try:
        worker.wait_metric("crawler_items_total", '{site="directory"}', 5)
        assert scan_rows(db, scan_id) == 0  # all still buffered in the BulkWriter
        worker.process.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, worker.text()[-3000:]
    finally:
        worker.kill()
    log = worker.text()
    written = {table: int(n) for table, n in WRITTEN_RE.findall(log)}
    stored = scan_rows(db, scan_id)
    assert stored >= 5 and stored == written.get("findings", 0) + written.get("rejected_candidates", 0), (
        stored,
        written,
    )
    status, error = db.execute("SELECT status, error FROM scans WHERE id = %s", (scan_id,)).fetchone()
    assert (status, error) == ("cancelled", "shutdown")
    # stopped part-way: the same search left alone finds more
    assert "'finish_reason': 'shutdown'" in log
    # evidence screenshots still pending are given up, not waited for (SCREENSHOTS_TIMEOUT is 180 s)
    drained = re.search(r"spider closed \(shutdown\) ([\d.]+)s after the signal", log)
    assert drained and float(drained.group(1)) < 15, log[-3000:]


def test_deferred_requests_stay_recoverable_as_dead_letters(sandbox, crawl_env, tmp_path, own_database_url):
    # every answer is a 503 with Retry-After 120: the retry middleware defers the requests in the scheduler
    env = {**crawl_env, "DATABASE_URL": own_database_url}
    worker, _ = lab_fetch(
        sandbox, tmp_path, env, count=3, concurrency=3, fail_mode="always", fail_status=503, retry_after=120
    )
    try:
        worker.wait_metric("crawler_requests_deferred_total", '{reason="retry"}', 3)
        worker.process.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, worker.text()[-3000:]
    finally:
        worker.kill()
    assert "3 deferred request(s) are kept as dead letters" in worker.text()
    with psycopg.connect(own_database_url) as conn:
        rows = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE spider = 'fetch' AND reason = 'deferred_at_shutdown' "
            "AND replayed_at IS NULL AND payload_ciphertext IS NOT NULL"
        ).fetchone()[0]
    assert rows == 3  # `scrapy crawl replay_dead_letters` sends them again


def shared_env(crawl_env, prefix: str) -> dict:
    return {**crawl_env, "REDIS_URL": REDIS_URL, "REDIS_KEY_PREFIX": prefix, "SCHEDULER_JOB": "shutdown"}


def leased(prefix: str) -> tuple[int, int]:
    """(queued, leased) of the fetch spider's shared job."""
    client = redis.Redis.from_url(REDIS_URL)
    base = f"{prefix}sched:{{fetch:shutdown}}"
    try:
        return client.zcard(f"{base}:queue"), client.zcard(f"{base}:leases")
    finally:
        client.close()


def test_shared_scheduler_returns_leases_on_sigterm_and_leaves_them_on_a_forced_stop(
    sandbox, crawl_env, tmp_path, redis_prefix
):
    for forced in (False, True):
        prefix = f"{redis_prefix}shutdown{int(forced)}:"
        env = shared_env(crawl_env, prefix)
        worker, tenant = lab_fetch(sandbox, tmp_path, env, count=8, concurrency=2, delay=2 if not forced else 20)
        try:
            wait_arrivals(tenant, worker, 2)
            worker.process.send_signal(signal.SIGTERM)
            if forced:
                draining(worker)
                worker.process.send_signal(signal.SIGTERM)
            code = worker.wait(timeout=60)
        finally:
            worker.kill()
        queued, leases = leased(prefix)
        if forced:
            # left to expire: the two in flight, and those leased ahead (SCHEDULER_PREFETCH)
            # that a forced stop gives no time to return; nothing is lost, none is in the queue twice
            assert code == 1 and 2 <= leases <= 6 and queued + leases == 8, (
                code,
                queued,
                leases,
                worker.text()[-3000:],
            )
        else:
            # the two in flight were crawled and acknowledged; the rest wait in the shared queue
            assert code == 0 and leases == 0 and queued == 6, (code, queued, leases, worker.text()[-3000:])
        client = redis.Redis.from_url(REDIS_URL)
        client.delete(*(client.keys(prefix + "*") or [prefix]))
        client.close()
