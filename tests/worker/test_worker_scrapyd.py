"""`python -m crawler.worker` with SCRAPYD_URLS: queued scans run on a real scrapyd (the project's
egg deployed with scrapyd-deploy) with the scan id as their only argument; the scan completes with
its findings, and nothing of the person is in scrapyd's log, its files, the worker's log or the
process list. Cancel: a scan still waiting in scrapyd's queue leaves it; a running one is stopped
(SIGTERM through cancel.json) and ends ``cancelled``. A SIGKILLed worker's crawl outlives it on
scrapyd: the worker that recovers the scan kills it before scheduling the scan again."""

from __future__ import annotations

import ast
import signal

import pytest
from scrapyd_support import (
    PROJECT,
    Scrapyd,
    deploy,
    found,
    job_log,
    list_jobs,
    running_scrapyd,
    scrapyd_files,
    session_processes,
)
from worker_support import (
    SITE,
    Worker,
    cancel,
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
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS

# scrapyd-deploy builds the egg in the repository: never beside test_egg.py's check that nothing is left there
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("repository_build")]


@pytest.fixture
def scrapyd(tmp_path, own_database_url, sandbox):
    """One crawl at a time (a second scan waits in scrapyd's queue); the project's settings in
    scrapyd's environment, which its crawls inherit: the worker passes nothing but the scan id."""
    environment = {
        "DATABASE_URL": own_database_url,
        "DATA_DIR": str(tmp_path / "data"),
        "CRAWLER_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
        "CRAWLER_BLIND_INDEX_KEY": BLIND_INDEX_KEY,
        "SITES_BASE_URLS": f"{SITE}={sandbox[SITE]}",
        "SCREENSHOTS_ENABLED": "false",
    }
    with running_scrapyd(tmp_path, environment, max_proc="1") as server:
        deploy(server, tmp_path)
        yield server


@pytest.fixture
def workers():
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.close()


def finished(url: str, scan_id: str):
    row = scan_row(url, scan_id)
    return row if row["status"] in ("completed", "failed", "cancelled") else None


def listing_urls(url: str, scan_id: str) -> set[str]:
    from crawler.security.context import finding_listing_url
    from support import crawl_keyring

    ring = crawl_keyring()
    rows = query(url, "SELECT listing_url_ciphertext FROM findings WHERE scan_id = %s", (scan_id,))
    return {ring.decrypt_text(row[0], finding_listing_url(scan_id)) for row in rows}


def crawl_arguments(server: Scrapyd, job: str) -> tuple[dict, dict]:
    """(settings, spider arguments) of the job's crawl, from scrapyd's "Process started" log line."""
    line = next(
        (line for line in server.log().splitlines() if "Process started:" in line and f"job='{job}'" in line), None
    )
    assert line is not None, server.log()[-4000:]
    command = ast.literal_eval(line[line.index(" args=") + len(" args=") :])
    assert command[3:5] == ["crawl", "scan"], command
    options = {"-s": {}, "-a": {}}
    for flag, value in zip(command[5::2], command[6::2], strict=True):
        name, _, text = value.partition("=")
        options[flag][name] = text
    return options["-s"], options["-a"]


class Sampler:
    """The process lists of scrapyd's and the worker's sessions, sampled while the test waits."""

    def __init__(self, server: Scrapyd, worker: Worker):
        self.sessions = (server.process.pid, worker.process.pid)
        self.processes: list[str] = []

    def __call__(self) -> None:
        self.processes.extend(session_processes(session) for session in self.sessions)


def test_scan_runs_on_scrapyd_by_id_alone_and_leaves_nothing_personal(
    own_database_url, sandbox, scrapyd, workers, tmp_path
):
    person = target()
    set_rate_limit(sandbox, 0)
    try:
        env = worker_env(own_database_url, sandbox, tmp_path, SCRAPYD_URLS=scrapyd.url)
        scan_id = create_scan(env, person)
        job_id = defer(own_database_url, scan_id, "normal")
        worker = Worker(env, tmp_path / "worker.log")
        workers.append(worker)
        sample = Sampler(scrapyd, worker)
        row = wait_for(
            lambda: sample() or finished(own_database_url, scan_id), "the scan to finish", worker=worker, interval=0.1
        )
    finally:
        set_rate_limit(sandbox, 60)
    assert row["status"] == "completed", (row, worker.log()[-3000:])
    assert row["attempts"] == 1 and row["error"] is None
    assert sandbox[SITE] + ground_truth(person)[SITE] in listing_urls(own_database_url, scan_id)
    wait_for(lambda: job_row(own_database_url, job_id)["status"] == "succeeded", "the job to succeed", worker=worker)

    # one crawl, on scrapyd, with the scan id as its only argument (scrapyd adds _job and its LOG_FILE)
    jobs = list_jobs(scrapyd)
    assert jobs["pending"] == [] and jobs["running"] == [], jobs
    assert [job["spider"] for job in jobs["finished"]] == ["scan"], jobs
    crawl = jobs["finished"][0]
    assert f"Process finished: project='{PROJECT}' spider='scan' job='{crawl['id']}'" in scrapyd.log()
    settings, arguments = crawl_arguments(scrapyd, crawl["id"])
    assert arguments == {"scan_id": scan_id, "_job": crawl["id"]}
    assert set(settings) <= {"LOG_FILE"}, settings
    log = job_log(scrapyd, crawl)
    assert "'finish_reason': 'finished'" in log and "Traceback" not in log, log[-4000:]
    assert any(f"scan_id={scan_id}" in text for text in sample.processes)  # the crawl was seen running
    assert f"scan {scan_id}: scheduled on scrapyd {scrapyd.url} as job {crawl['id']}" in worker.log()

    personal = {
        "first name": person.first_name,
        "last name": person.last_name,
        "e-mail": person.emails[0],
        "listing": ground_truth(person)[SITE],
    }
    places = {
        "ps output": "\n".join(sample.processes),
        "scrapyd's log and files": scrapyd_files(scrapyd),
        "the worker's log": worker.log(),
    }
    leaks = [
        f"{what} in {where}" for where, text in places.items() for what, value in personal.items() if found(value, text)
    ]
    assert leaks == []
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()[-3000:]


def test_cancel_on_scrapyd_a_queued_and_a_running_scan(own_database_url, sandbox, scrapyd, workers, tmp_path):
    person = target()
    env = worker_env(own_database_url, sandbox, tmp_path, SCRAPYD_URLS=scrapyd.url, WORKER_CONCURRENCY=2)
    running = create_scan(env, person)
    running_job = defer(own_database_url, running, "high")
    set_rate_limit(sandbox, 1)  # the crawl waits: it is still running when cancelled
    try:
        worker = Worker(env, tmp_path / "worker.log")
        workers.append(worker)
        wait_for(lambda: scan_row(own_database_url, running)["status"] == "running", "the scan to run", worker=worker)

        # scrapyd runs one crawl at a time: the second scan waits in its queue, by id alone
        queued = create_scan(env, person)
        queued_job = defer(own_database_url, queued, "normal")
        waiting = wait_for(lambda: list_jobs(scrapyd)["pending"], "the second scan in scrapyd's queue", worker=worker)
        assert [job["args"] for job in waiting] == [{"scan_id": queued}], waiting
        assert [job["settings"] for job in waiting] == [{}], waiting
        assert cancel(own_database_url, queued) == "cancelled"  # not started: cancelled at once
        wait_for(
            lambda: job_row(own_database_url, queued_job)["status"] in ("aborted", "failed"),
            "the queued scan's job to end",
            worker=worker,
        )
        jobs = list_jobs(scrapyd)
        assert not jobs["pending"] and waiting[0]["id"] not in {j["id"] for j in jobs["running"] + jobs["finished"]}

        assert cancel(own_database_url, running) == "running"
        row = wait_for(lambda: finished(own_database_url, running), "the cancelled scan to end", worker=worker)
    finally:
        set_rate_limit(sandbox, 60)
    assert row["status"] == "cancelled", row
    assert row["attempts"] == 1
    assert scan_row(own_database_url, queued)["status"] == "cancelled"
    wait_for(
        lambda: job_row(own_database_url, running_job)["status"] in ("aborted", "failed"),
        "the running scan's job to end",
        worker=worker,
    )
    jobs = wait_for(lambda: (j := list_jobs(scrapyd))["finished"] and not j["running"] and j, "the crawl to end")
    assert [job["spider"] for job in jobs["finished"]] == ["scan"], jobs
    # stopped with one SIGTERM: the crawl drained and exited 0
    assert f"Process finished: project='{PROJECT}' spider='scan' job='{jobs['finished'][0]['id']}'" in scrapyd.log()
    worker.signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.log()[-3000:]


def test_sigkilled_worker_crawl_left_on_scrapyd_is_killed_before_the_retry(
    own_database_url, sandbox, scrapyd, workers, tmp_path
):
    person = target()
    env = worker_env(own_database_url, sandbox, tmp_path, SCRAPYD_URLS=scrapyd.url)
    scan_id = create_scan(env, person)
    defer(own_database_url, scan_id, "normal")
    set_rate_limit(sandbox, 2)  # the crawl is refused mid-scan and waits out the limit (a minute)
    refused = rate_limited(sandbox)
    try:
        first = Worker(env, tmp_path / "worker1.log")
        workers.append(first)
        wait_for(lambda: scan_row(own_database_url, scan_id)["status"] == "running", "the scan to run", worker=first)
        wait_for(lambda: rate_limited(sandbox) > refused, "the crawl to be refused", worker=first)
        first.process.kill()
        first.wait()
        # unlike a local crawl, the one on scrapyd outlives its worker
        left = [job["id"] for job in list_jobs(scrapyd)["running"]]
        assert len(left) == 1 and left[0].startswith(f"{scan_id}-"), left
        second = Worker(env, tmp_path / "worker2.log")
        workers.append(second)
        killing = f"scan {scan_id}: killing its earlier scrapyd job {left[0]} on {scrapyd.url}"
        wait_for(lambda: killing in second.log(), "the earlier crawl to be killed", worker=second)
    finally:
        set_rate_limit(sandbox, 0)
    try:
        row = wait_for(lambda: finished(own_database_url, scan_id), "the recovered scan to finish", worker=second)
    finally:
        set_rate_limit(sandbox, 60)
    assert row["status"] == "completed", row
    assert row["attempts"] == 2
    assert f"Process died: exitstatus=None project='{PROJECT}' spider='scan' job='{left[0]}'" in scrapyd.log()
    # the scan is completed a moment before its crawl process ends
    jobs = wait_for(lambda: (j := list_jobs(scrapyd))["finished"] and not j["running"] and j, "the crawl to end")
    assert len(jobs["finished"]) == 2 and not jobs["pending"], jobs
    rows = query(
        own_database_url,
        "SELECT website_id, data_type, value_index, listing_url_index FROM findings WHERE scan_id = %s",
        (scan_id,),
    )
    assert rows and len(rows) == len(set(rows))  # each finding stored once
    assert sandbox[SITE] + ground_truth(person)[SITE] in listing_urls(own_database_url, scan_id)
    second.signal(signal.SIGTERM)
    assert second.wait() == 0, second.log()[-3000:]
