"""Real crawls against the sandbox: the scan row's lifecycle and counters, the events on the
scan's Redis channel (a real subscription), error kinds per site, and screenshots taken in the
system Chromium and stored encrypted."""

import json
import socket
import subprocess
import sys
import time
import uuid

import pytest
import redis

from crawler.security.evidence import ScreenshotStore
from sandbox.population import default_population
from support import REDIS_URL, ROOT, crawl_keyring


@pytest.fixture(scope="module")
def target():
    """A listed person with an e-mail and a phone, searched with state and age (so the matcher accepts them)."""
    return next(p for p in default_population().people[20:] if p.emails and p.phones and p.age)


def person_args(person, scan_id):
    return [
        "-a",
        f"first_name={person.first_name}",
        "-a",
        f"last_name={person.last_name}",
        "-a",
        f"state={person.addresses[0].state}",
        "-a",
        f"age={person.age}",
        "-a",
        f"scan_id={scan_id}",
    ]


class Subscription:
    """A real Redis subscription to one scan's channel, opened before the crawl starts."""

    def __init__(self, scan_id):
        self.client = redis.Redis.from_url(REDIS_URL)
        self.pubsub = self.client.pubsub()
        self.pubsub.subscribe(f"scans:{scan_id}:events")
        assert self.pubsub.get_message(timeout=5)["type"] == "subscribe"

    def messages(self, timeout=10) -> list[dict]:
        found, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.pubsub.get_message(timeout=0.5)
            if message and message["type"] == "message":
                found.append(json.loads(message["data"]))
                if found[-1]["event"] == "completed":
                    break
        self.pubsub.close()
        self.client.close()
        return found


@pytest.fixture
def redis_env(crawl_env, redis_prefix):
    crawl_env.update(REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=f"{redis_prefix}{uuid.uuid4().hex[:6]}:")
    return crawl_env


def probe(scrapy_cmd, env, scan_id, person, pages="", listing_urls="", *settings):
    extra = [arg for s in settings for arg in ("-s", s)]
    result = scrapy_cmd(
        [
            "crawl",
            "scan_probe",
            "-s",
            "SPIDER_MODULES=tests.scans.probe_spider",
            "-s",
            "RETRY_TIMES=0",
            *extra,
            *person_args(person, scan_id),
            "-a",
            f"pages={pages}",
            "-a",
            f"listing_urls={listing_urls}",
        ],
        env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_example_scan_publishes_events_and_stores_a_screenshot(scrapy_cmd, redis_env, sandbox, db, target):
    scan_id = str(uuid.uuid4())
    subscription = Subscription(scan_id)
    result = scrapy_cmd(
        ["crawl", "example", *person_args(target, scan_id), "-a", f"base_url={sandbox['directory']}"],
        redis_env,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    messages = subscription.messages()
    # the example spider's own search decides (no match pipeline): its listings are stored directly
    assert [m["event"] for m in messages] == ["completed"] and messages[0]["status"] == "completed"

    status, counters, started, finished = db.execute(
        "SELECT status, counters, started_at, finished_at FROM scans WHERE id = %s", (scan_id,)
    ).fetchone()
    assert status == "completed" and started <= finished
    site = counters["directory"]
    assert site["screenshots"] == site["stored"] == site["listings"] >= 1 and site["outcome"] == "found"
    assert messages[-1]["counters"] == counters

    shas = {r[0] for r in db.execute("SELECT screenshot_sha256 FROM findings WHERE scan_id = %s", (scan_id,))}
    assert len(shas) >= 1 and None not in shas
    sha = shas.pop()
    path, size = db.execute("SELECT path, bytes FROM screenshots WHERE sha256 = %s", (sha,)).fetchone()
    store = ScreenshotStore(ROOT / redis_env["DATA_DIR"] / "screenshots", crawl_keyring())
    png = store.load(sha)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) == size
    assert png not in (store.root / path).read_bytes()  # encrypted at rest
    assert "screenshots/captured" in result.stderr


def test_errored_sites_show_their_error_kinds_on_the_row_and_the_channel(scrapy_cmd, redis_env, sandbox, db, target):
    scan_id = str(uuid.uuid4())
    directory, truepeople = sandbox["directory"], sandbox["truepeople"]
    pages = " ".join(
        [
            f"directory|{directory}/person/{target.id}",
            f"directory|{directory}/person/P999999",
            f"truepeople|{truepeople}/InternalCaptcha?returnUrl=/find/person/x",
            f"gone|http://127.0.0.1:{closed_port()}/person/{target.id}",
        ]
    )
    # an accepted listing whose screenshot cannot be taken (its URL is a 404) is kept without one
    listing_urls = f"directory|{directory}/person/{target.id}|{directory}/person/P999998"
    subscription = Subscription(scan_id)
    probe(scrapy_cmd, redis_env, scan_id, target, pages, listing_urls)
    messages = subscription.messages()

    status, counters, error = db.execute(
        "SELECT status, counters, error FROM scans WHERE id = %s", (scan_id,)
    ).fetchone()
    assert status == "completed" and error is None
    assert counters["directory"]["errors"] == {"not_found": 1, "screenshot_failed": 1}
    assert counters["directory"]["accepted"] == 2 and counters["directory"]["outcome"] == "partial"
    assert counters["truepeople"]["errors"] == {"captcha": 1} and counters["truepeople"]["blocks"] == {"captcha": 1}
    assert counters["truepeople"]["outcome"] == "error" and counters["truepeople"]["listings"] == 0
    assert counters["gone"]["errors"] == {"unreachable": 1} and counters["gone"]["outcome"] == "error"
    shots = db.execute(
        "SELECT count(*) FILTER (WHERE screenshot_sha256 IS NULL),"
        " count(*) FILTER (WHERE screenshot_sha256 IS NOT NULL)"
        " FROM findings WHERE scan_id = %s AND data_type = 'name'",
        (scan_id,),
    ).fetchone()
    assert shots == (1, 1)

    found = [m for m in messages if m["event"] == "found_data"]
    assert [m["site"] for m in found] == ["directory", "directory"]
    assert all(m["confidence"] >= 0.85 and m["data_types"]["name"] == 1 for m in found)
    # nothing personal on the channel
    text = json.dumps(messages).lower()
    for value in (target.first_name, target.last_name, *target.emails, *(p.number for p in target.phones)):
        assert value.lower() not in text
    errors = sorted((m["site"], m["kind"], m["source"]) for m in messages if m["event"] == "error")
    assert errors == [
        ("directory", "not_found", "spider"),
        ("directory", "screenshot_failed", "spider"),
        ("gone", "unreachable", "spider"),
        ("truepeople", "captcha", "block"),
        ("truepeople", "captcha", "spider"),
    ]
    assert {m["site"] for m in messages if m["event"] == "progress"} == {"directory", "truepeople", "gone"}
    assert messages[-1]["event"] == "completed" and messages[-1]["counters"] == counters


def test_a_scan_whose_every_site_failed_is_failed_not_empty(scrapy_cmd, crawl_env, sandbox, db, target):
    scan_id = str(uuid.uuid4())
    probe(scrapy_cmd, crawl_env, scan_id, target, f"truepeople|{sandbox['truepeople']}/InternalCaptcha?returnUrl=/")
    status, counters, error = db.execute(
        "SELECT status, counters, error FROM scans WHERE id = %s", (scan_id,)
    ).fetchone()
    assert status == "failed" and error == "every site failed: truepeople captcha"
    assert counters["truepeople"]["outcome"] == "error"


def test_counters_reach_the_row_while_the_scan_runs(crawl_env, sandbox, db, target):
    scan_id = str(uuid.uuid4())
    people = [p.id for p in default_population().people[:12]]
    pages = " ".join(f"directory|{sandbox['directory']}/person/{pid}" for pid in people)
    command = [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "scan_probe",
        "-s",
        "SPIDER_MODULES=tests.scans.probe_spider",
        "-s",
        "SCANS_UPDATE_SECONDS=0.2",
        "-s",
        "SCREENSHOTS_ENABLED=false",
        *person_args(target, scan_id),
        "-a",
        f"pages={pages}",
        "-a",
        "rps=4",
    ]
    crawl = subprocess.Popen(
        command, cwd=ROOT, env=crawl_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    seen = []  # (status, pages handled) while it runs
    deadline = time.monotonic() + 120
    while crawl.poll() is None and time.monotonic() < deadline:
        row = db.execute("SELECT status, counters FROM scans WHERE id = %s", (scan_id,)).fetchone()
        if row:
            seen.append((row[0], row[1].get("directory", {}).get("pages", {}).get("detail", 0)))
        time.sleep(0.1)
    _, stderr = crawl.communicate(timeout=30)
    assert crawl.returncode == 0, stderr[-3000:]
    running = sorted({n for status, n in seen if status == "running"})
    assert len(running) >= 3 and 0 < running[1] < len(people), running  # several partial counts on a running row
    final = db.execute("SELECT status, counters FROM scans WHERE id = %s", (scan_id,)).fetchone()
    assert final[0] == "completed" and final[1]["directory"]["pages"] == {"detail": len(people)}


def test_a_broker_spider_scan_sends_progress_found_data_and_completed(scrapy_cmd, redis_env, sandbox, db):
    from sandbox.population import ground_truth

    person = next(p for p in default_population().people[40:] if "fastpeople" in ground_truth(p) and p.age)
    scan_id = str(uuid.uuid4())
    subscription = Subscription(scan_id)
    result = scrapy_cmd(
        [
            "crawl",
            "fastpeople",
            *person_args(person, scan_id),
            "-s",
            f"SITES_BASE_URLS=fastpeople={sandbox['fastpeople']}",
        ],
        redis_env,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    messages = subscription.messages()
    stages = {m["stage"] for m in messages if m["event"] == "progress"}
    assert {"detail"} <= stages and stages & {"search", "results"}, stages
    assert [m["site"] for m in messages if m["event"] == "found_data"] == ["fastpeople"]
    assert messages[-1]["event"] == "completed" and messages[-1]["status"] == "completed"
    counters = db.execute("SELECT counters FROM scans WHERE id = %s", (scan_id,)).fetchone()[0]["fastpeople"]
    assert counters["accepted"] == 1 and counters["screenshots"] == 1 and counters["outcome"] in ("found", "partial")
    assert counters["pages"]["detail"] >= 1
