"""A crawl whose database connections are killed again and again loses no row."""

import subprocess
import threading
import time
import uuid

import psycopg

from support import ROOT, SCRAPY, options

KILL = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND application_name = 'crawler' AND pid <> pg_backend_pid()"
)


def crawl(crawl_env, sandbox, scan_id, **settings):
    person = {"first_name": "John", "last_name": "Smith", "scan_id": scan_id, "base_url": sandbox["directory"]}
    args = [*SCRAPY, "crawl", "example", *options(person, settings)]
    return subprocess.Popen(args, cwd=ROOT, env=crawl_env, stderr=subprocess.PIPE, text=True)


def test_connections_killed_mid_crawl_lose_nothing(crawl_env, sandbox, database_url, db):
    slow = {
        "PG_BATCH_ROWS": 5,
        "PG_FLUSH_SECONDS": 0.1,
        "DOWNLOAD_DELAY": 0.05,
        "CONCURRENT_REQUESTS": 2,
        "SCREENSHOTS_ENABLED": "false",
    }  # rows must flow while connections are killed
    calm_id, chaos_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert crawl(crawl_env, sandbox, calm_id, **slow).wait(timeout=120) == 0

    process = crawl(crawl_env, sandbox, chaos_id, **slow)
    kills = 0
    stop = threading.Event()

    def killer():
        nonlocal kills
        with psycopg.connect(database_url, autocommit=True) as admin:
            # once the scan row is written (start-up time varies with load), cut the crawler off again and again
            deadline = time.monotonic() + 60
            while (
                not stop.is_set()
                and time.monotonic() < deadline
                and not admin.execute("SELECT 1 FROM scans WHERE id = %s", (chaos_id,)).fetchone()
            ):
                time.sleep(0.05)
            # then cut until six sessions are gone (rounds, not a fixed time: a busy machine crawls slower),
            # and let the crawl recover: cutting every session for ever would only prove a stalled crawl
            while not stop.is_set() and process.poll() is None and kills < 6 and time.monotonic() < deadline + 60:
                kills += admin.execute(KILL).fetchone()[0]
                time.sleep(0.05)

    thread = threading.Thread(target=killer)
    thread.start()
    _, stderr = process.communicate(timeout=180)
    stop.set()
    thread.join()
    assert process.returncode == 0, stderr[-3000:]
    assert kills >= 3  # sessions the server cut: in use (retried writes) or idle (replaced by the pool)

    count = "SELECT count(*) FROM findings WHERE scan_id = %s"
    calm = db.execute(count, (calm_id,)).fetchone()[0]
    assert calm > 100 and db.execute(count, (chaos_id,)).fetchone()[0] == calm
    assert db.execute("SELECT status FROM scans WHERE id = %s", (chaos_id,)).fetchone()[0] == "completed"
