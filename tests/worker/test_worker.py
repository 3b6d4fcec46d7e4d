"""`python -m crawler.worker` against a real database, the sandbox and real crawls: a queued scan
completes; a high-priority scan overtakes 100 low ones; a SIGKILLed worker's scan is recovered and
stores each finding once; a crashing crawl is retried then failed; SIGTERM lets the running scan
finish; pending and running scans are cancelled."""

from __future__ import annotations

import signal

import pytest
from worker_support import (
    SITE,
    Worker,
    cancel,
    crawl_processes,
    create_broken_scan,
    create_scan,
    defer,
    job_row,
    query,
    rate_limited,
    scan_row,
    set_rate_limit,
    target,
    wait_for,
    worker_env,
)

from sandbox.population import ground_truth

pytestmark = pytest.mark.e2e


@pytest.fixture
def person():
    return target()


@pytest.fixture
def unlimited(sandbox):
    """The site without its rate limit for the test (crawls are quick), restored afterwards."""
    set_rate_limit(sandbox, 0)
    yield sandbox
    set_rate_limit(sandbox, 60)


@pytest.fixture
def workers():
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.close()


def findings(url: str, scan_id: str) -> list[tuple]:
    return query(
        url,
        "SELECT website_id, data_type, value_index, listing_url_index FROM findings WHERE scan_id = %s",
        (scan_id,),
    )


def listing_urls(url: str, scan_id: str) -> set[str]:
    from crawler.security.context import finding_listing_url
    from support import crawl_keyring

    ring = crawl_keyring()
    rows = query(url, "SELECT listing_url_ciphertext FROM findings WHERE scan_id = %s", (scan_id,))
    return {ring.decrypt_text(row[0], finding_listing_url(scan_id)) for row in rows}


def finished(url: str, scan_id: str):
    row = scan_row(url, scan_id)
    return row if row["status"] in ("completed", "failed", "cancelled") else None


def test_queued_scan_runs_to_completed_with_findings(own_database_url, unlimited, person, workers, tmp_path):
    env = worker_env(own_database_url, unlimited, tmp_path)
    scan_id = create_scan(env, person)
    job_id = defer(own_database_url, scan_id, "normal")
    assert scan_row(own_database_url, scan_id)["job_id"] == job_id
    worker = Worker(env, tmp_path / "worker.log")
    workers.append(worker)
    row = wait_for(lambda: finished(own_database_url, scan_id), "the scan to finish", worker=worker)
    assert row["status"] == "completed", row
    assert row["attempts"] == 1 and row["error"] is None
    assert unlimited[SITE] + ground_truth(person)[SITE] in listing_urls(own_database_url, scan_id)
    wait_for(lambda: job_row(own_database_url, job_id)["status"] == "succeeded", "the job to succeed", worker=worker)
    # the worker's log names the scan by id, never the person
    log = worker.log()
    assert scan_id in log
    for value in (person.last_name, person.emails[0]):
        assert value not in log


def test_high_priority_scan_starts_before_100_queued_low_ones(own_database_url, sandbox, workers, tmp_path):
    env = worker_env(own_database_url, sandbox, tmp_path, WORKER_CONCURRENCY=1)
    lows = [create_broken_scan(own_database_url) for _ in range(100)]
    low_jobs = [defer(own_database_url, scan_id, "low") for scan_id in lows]
    high = create_broken_scan(own_database_url)
    high_job = defer(own_database_url, high, "high")
    assert high_job > max(low_jobs)  # queued last
    worker = Worker(env, tmp_path / "worker.log")
    workers.append(worker)
    # the scans queue's jobs only (the worker's periodic removal tick runs beside them, queue removals)
    started_sql = (
        "SELECT e.job_id FROM procrastinate_events e JOIN procrastinate_jobs j ON j.id = e.job_id"
        " WHERE e.type = 'started' AND j.queue_name = 'scans' ORDER BY e.at, e.id"
    )
    order = wait_for(
        lambda: (rows := query(own_database_url, started_sql)) and len(rows) >= 2 and [r[0] for r in rows],
        "two jobs to start",
        worker=worker,
    )
    assert order[0] == high_job, order[:5]
    assert set(order[1:]) <= set(low_jobs) | {high_job}
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()[-3000:]


def test_sigkilled_worker_scan_is_recovered_and_each_finding_stored_once(
    own_database_url, sandbox, person, workers, tmp_path
):
    env = worker_env(own_database_url, sandbox, tmp_path)
    scan_id = create_scan(env, person)
    defer(own_database_url, scan_id, "normal")
    # two requests a minute: the crawl is refused mid-scan and waits out the limit (a minute)
    set_rate_limit(sandbox, 2)
    refused = rate_limited(sandbox)
    try:
        first = Worker(env, tmp_path / "worker1.log")
        workers.append(first)
        wait_for(lambda: scan_row(own_database_url, scan_id)["status"] == "running", "the scan to run", worker=first)
        wait_for(lambda: rate_limited(sandbox) > refused, "the crawl to be refused", worker=first)
        crawls = crawl_processes(scan_id, first)
        assert len(crawls) == 1, crawls
        first.process.kill()
        first.wait()
        # the orphaned crawl dies with its worker (PR_SET_PDEATHSIG): it cannot race with the retry
        wait_for(lambda: not crawl_processes(scan_id, first), "the orphaned crawl to die", timeout=30)
        assert scan_row(own_database_url, scan_id)["status"] == "running"
    finally:
        set_rate_limit(sandbox, 0)
    second = Worker(env, tmp_path / "worker2.log")
    workers.append(second)
    row = wait_for(lambda: finished(own_database_url, scan_id), "the recovered scan to finish", worker=second)
    assert row["status"] == "completed", row
    assert row["attempts"] == 2
    assert f"scan {scan_id}: its worker stopped answering; queued again" in second.log()
    # the same person scanned once, without interruption: the same findings, each once
    reference = create_scan(env, person)
    defer(own_database_url, reference, "normal")
    assert wait_for(lambda: finished(own_database_url, reference), "the reference scan", worker=second)["status"] == (
        "completed"
    )
    set_rate_limit(sandbox, 60)
    recovered, once = findings(own_database_url, scan_id), findings(own_database_url, reference)
    assert recovered and sorted(recovered) == sorted(once)
    assert sandbox[SITE] + ground_truth(person)[SITE] in listing_urls(own_database_url, scan_id)
    second.signal(signal.SIGTERM)
    assert second.wait() == 0


def test_crashing_crawl_is_retried_then_failed_with_its_reason(own_database_url, sandbox, workers, tmp_path):
    env = worker_env(own_database_url, sandbox, tmp_path, SCAN_MAX_ATTEMPTS=3)
    scan_id = create_broken_scan(own_database_url)  # no stored target: the crawl exits 2
    job_id = defer(own_database_url, scan_id, "normal")
    worker = Worker(env, tmp_path / "worker.log")
    workers.append(worker)
    row = wait_for(lambda: finished(own_database_url, scan_id), "the scan to fail", worker=worker)
    assert row["status"] == "failed", row
    assert row["attempts"] == 3
    assert row["error"] == "attempt 3: crawl exited with code 2"
    job = wait_for(
        lambda: (j := job_row(own_database_url, job_id))["status"] == "failed" and j, "the job to fail", worker=worker
    )
    assert job["attempts"] == 3  # procrastinate counts every run, the last (failed) one too
    deferred = query(
        own_database_url,
        "SELECT count(*) FROM procrastinate_events WHERE job_id = %s AND type = 'deferred_for_retry'",
        (job_id,),
    )[0][0]
    assert deferred == 2
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0


def test_sigterm_lets_the_running_scan_finish_then_exits_0(own_database_url, sandbox, person, workers, tmp_path):
    env = worker_env(own_database_url, sandbox, tmp_path)
    scan_id = create_scan(env, person)
    defer(own_database_url, scan_id, "normal")
    queued = create_broken_scan(own_database_url)
    queued_job = defer(own_database_url, queued, "low")
    set_rate_limit(sandbox, 2)  # the scan takes a while: SIGTERM lands mid-scan
    try:
        worker = Worker(env, tmp_path / "worker.log")
        workers.append(worker)
        wait_for(lambda: scan_row(own_database_url, scan_id)["status"] == "running", "the scan to run", worker=worker)
        worker.signal(signal.SIGTERM)
        set_rate_limit(sandbox, 0)
        code = worker.wait(timeout=240)
    finally:
        set_rate_limit(sandbox, 60)
    assert code == 0, worker.log()[-3000:]
    row = scan_row(own_database_url, scan_id)
    assert row["status"] == "completed", row
    assert row["attempts"] == 1
    # no new scan was taken after the signal
    assert job_row(own_database_url, queued_job)["status"] == "todo"
    assert scan_row(own_database_url, queued)["status"] == "pending"


def test_cancel_pending_and_running_scans(own_database_url, sandbox, person, workers, tmp_path):
    env = worker_env(own_database_url, sandbox, tmp_path)
    pending = create_scan(env, person)
    pending_job = defer(own_database_url, pending, "normal")
    assert cancel(own_database_url, pending) == "cancelled"
    row = scan_row(own_database_url, pending)
    assert row["status"] == "cancelled" and row["finished_at"] is not None
    assert job_row(own_database_url, pending_job)["status"] == "cancelled"
    assert cancel(own_database_url, pending) == "cancelled"  # again: unchanged

    running = create_scan(env, person)
    running_job = defer(own_database_url, running, "normal")
    set_rate_limit(sandbox, 1)  # the crawl waits: it is still running when cancelled
    try:
        worker = Worker(env, tmp_path / "worker.log")
        workers.append(worker)
        wait_for(lambda: scan_row(own_database_url, running)["status"] == "running", "the scan to run", worker=worker)
        assert cancel(own_database_url, running) == "running"
        assert scan_row(own_database_url, running)["cancel_requested_at"] is not None
        row = wait_for(lambda: finished(own_database_url, running), "the cancelled scan to end", worker=worker)
    finally:
        set_rate_limit(sandbox, 60)
    assert row["status"] == "cancelled", row
    assert row["attempts"] == 1
    wait_for(
        lambda: job_row(own_database_url, running_job)["status"] in ("aborted", "failed"),
        "the job to end",
        worker=worker,
    )
    assert not crawl_processes(running, worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0
