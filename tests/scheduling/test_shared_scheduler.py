"""The shared scheduler with real Scrapy processes, real Redis and PostgreSQL, against the sandbox lab.

Each crawl stores one ``events`` row per lab page (tests/scheduling/lab_tree_spider.py), so
"every record stored" is a row count, and the lab's arrivals say which pages were requested.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import redis
from scrapy import Request

from support import REDIS_URL, ROOT, crawl_keyring, http

HERE = Path(__file__).resolve().parent
TREE = str(HERE / "lab_tree_spider.py")
FEED = str(HERE / "lab_feed_spider.py")


class Lab:
    def __init__(self, lab_url: str, **config):
        self.base = f"{lab_url}/t/{uuid.uuid4().hex[:12]}"
        self.tenant = self.base.rsplit("/", 1)[-1]
        if config:
            assert http(f"{self.base}/config", data=config).status == 200

    def stats(self) -> dict:
        return http(f"{self.base}/stats").json()

    def page_requests(self) -> Counter:
        """How many times each page number was requested."""
        return Counter(int(path.rsplit("/", 1)[-1]) for _, path, _ in self.stats()["arrivals"] if "/page/" in path)


@pytest.fixture
def job(crawl_env, redis_prefix):
    """Environment for the workers of one shared job (its own Redis prefix)."""
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:6]}:"
    env = dict(
        crawl_env,
        REDIS_URL=REDIS_URL,
        REDIS_KEY_PREFIX=prefix,
        RATELIMIT_ENABLED="false",
        CIRCUIT_ENABLED="false",
        LOG_LEVEL="INFO",
        SCHEDULER_LEASE_SECONDS="3",
        SCHEDULER_ACK_SECONDS="0.3",
        SCHEDULER_IDLE_CLOSE_SECONDS="2",
        PG_FLUSH_SECONDS="0.5",
        SCHEDULER_STATS_SECONDS="1",
    )
    return env


def keys(env, pattern: str = "*") -> list[bytes]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return sorted(client.scan_iter(match=env["REDIS_KEY_PREFIX"] + pattern, count=1000))
    finally:
        client.close()


def worker(env, spider: str, *args: str, settings: dict | None = None, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "scrapy", "runspider", spider, *args]
    for name, value in (settings or {}).items():
        command += ["-s", f"{name}={value}"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"))


def rows(db, lab: Lab) -> Counter:
    found = db.execute("SELECT id FROM events WHERE source = %s", (f"lab:{lab.tenant}",)).fetchall()
    return Counter(int(row[0].rsplit(":", 1)[1]) for row in found)


def crawl_with_a_kill(env, lab: Lab, tmp_path, limit: int, settings: dict | None = None, all_alive: bool = True):
    """Three workers on one job; one is SIGKILLed once the crawl is well under way (it goes first in the
    list returned). ``all_alive``: no worker may have ended before the kill."""
    args = ["-a", f"base={lab.base}", "-a", f"limit={limit}"]
    # a worker starting while the first is still on the root page meets an empty queue: on a busy machine
    # that can outlast the job's 2 s idle limit, so these workers wait longer before closing
    settings = {"SCHEDULER_IDLE_CLOSE_SECONDS": 8, **(settings or {})}
    logs = [tmp_path / f"worker{n}.log" for n in range(3)]
    procs = [worker(env, TREE, *args, settings=settings, log=logs[n]) for n in range(3)]
    try:
        deadline = time.monotonic() + 60
        while lab.stats()["requests"] < limit // 4:
            assert time.monotonic() < deadline, logs[0].read_text()[-3000:]
            assert not all_alive or all(p.poll() is None for p in procs), "a worker ended before the kill"
            time.sleep(0.1)
        alive = [n for n, p in enumerate(procs) if p.poll() is None]
        assert alive, "every worker ended before the kill"
        victim = alive[0]
        procs[victim].send_signal(signal.SIGKILL)
        procs.insert(0, procs.pop(victim))
        logs.insert(0, logs.pop(victim))
        for proc in procs[1:]:
            proc.wait(timeout=120)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return procs, logs


def test_killed_worker_loses_nothing(job, sandbox, db, tmp_path):
    lab = Lab(sandbox["lab"], delay=0.1)
    limit = 600
    procs, logs = crawl_with_a_kill(job, lab, tmp_path, limit, settings={"CONCURRENT_REQUESTS": 6})
    assert procs[0].returncode == -signal.SIGKILL
    assert [p.returncode for p in procs[1:]] == [0, 0], logs[1].read_text()[-3000:]
    stored = rows(db, lab)
    assert sorted(stored) == list(range(limit))  # every record, once (PRIMARY KEY + ON CONFLICT DO NOTHING)
    requested = lab.page_requests()
    assert set(requested) == set(range(limit))  # every request crawled
    # the killed worker's in-flight requests came back through its expired leases, and were crawled again
    returned = sum(
        int(line.rsplit("'scheduler/leases/expired_returned': ", 1)[1].split(",")[0].split("}")[0])
        for log in logs[1:]
        for line in log.read_text().splitlines()
        if "'scheduler/leases/expired_returned'" in line
    )
    assert returned >= 1
    assert sum(requested.values()) - limit <= returned  # re-crawls only for returned leases
    assert keys(job, "sched:*") == [job["REDIS_KEY_PREFIX"].encode() + b"sched:{lab_tree}:stats"]  # finished: cleaned


def test_stock_scrapy_redis_loses_a_killed_workers_requests(job, sandbox, db, tmp_path):
    """The same crawl on scrapy-redis's own scheduler: what the killed worker had popped is gone for good.
    A worker killed while it holds nothing popped (scrapy-redis's workers idle and close whenever the queue
    is momentarily empty, which a busy machine makes likelier) loses nothing, so the kill is tried up to
    three times, each on a fresh job: the claim is that stock scrapy-redis *can* lose requests."""
    limit = 600
    outcomes = []
    for attempt in range(3):
        lab = Lab(sandbox["lab"], delay=0.1)
        prefix = f"{job['REDIS_KEY_PREFIX']}a{attempt}:"
        stock = {
            "SCHEDULER": "scrapy_redis.scheduler.Scheduler",
            "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
            "SCHEDULER_PERSIST": "true",
            "SCHEDULER_QUEUE_KEY": prefix + "%(spider)s:requests",
            "SCHEDULER_DUPEFILTER_KEY": prefix + "%(spider)s:dupefilter",
            "CONCURRENT_REQUESTS": 6,
        }
        attempt_path = tmp_path / f"attempt{attempt}"
        attempt_path.mkdir()
        procs, logs = crawl_with_a_kill(job, lab, attempt_path, limit, settings=stock, all_alive=False)
        assert [p.returncode for p in procs[1:]] == [0, 0], logs[1].read_text()[-3000:]
        missing = set(range(limit)) - set(lab.page_requests())
        stored = len(rows(db, lab))
        outcomes.append((len(missing), limit - stored))
        print(f"stock scrapy-redis: {len(missing)} of {limit} pages never requested, {limit - stored} rows missing")
        if missing:  # the subtrees below the killed worker's popped requests were never discovered
            assert stored < limit
            return
    raise AssertionError(f"no kill lost anything in {len(outcomes)} attempts: {outcomes}")


def test_workers_share_one_dupefilter_and_close_when_idle(job, sandbox, db, tmp_path):
    lab = Lab(sandbox["lab"])
    args = ["-a", f"base={lab.base}", "-a", "limit=200"]
    started = time.monotonic()
    procs = [worker(job, TREE, *args, log=tmp_path / f"w{n}.log") for n in range(2)]
    assert [p.wait(timeout=90) for p in procs] == [0, 0], (tmp_path / "w0.log").read_text()[-3000:]
    assert time.monotonic() - started < 45  # idle close (2 s here), not a hang
    assert lab.page_requests() == Counter(range(200))  # each page once, across both workers
    assert sorted(rows(db, lab)) == list(range(200))
    logs = [(tmp_path / f"w{n}.log").read_text() for n in range(2)]
    assert all("Closing spider (finished)" in log for log in logs)


def test_bloom_dupefilter(job, sandbox, db, tmp_path):
    lab = Lab(sandbox["lab"])
    proc = worker(
        job,
        TREE,
        "-a",
        f"base={lab.base}",
        "-a",
        "limit=150",
        log=tmp_path / "w.log",
        settings={
            "SCHEDULER_DUPEFILTER_BLOOM": "true",
            "SCHEDULER_PERSIST": "true",
            "SCHEDULER_BLOOM_CAPACITY": 100_000,
        },
    )
    assert proc.wait(timeout=90) == 0, (tmp_path / "w.log").read_text()[-3000:]
    assert lab.page_requests() == Counter(range(150))
    assert sorted(rows(db, lab)) == list(range(150))
    # the fingerprints are in the Bloom filter's bitmaps, kept (SCHEDULER_PERSIST)
    assert keys(job, "sched:{lab_tree}:dupefilter:bloom:*")
    assert not keys(job, "sched:{lab_tree}:dupefilter")


def staged_queue(env, spider: str, token: str = "stager"):
    """The job's LeaseQueue, as another worker would see it (requests pushed from the test), sealing
    requests with the crawls' keys as every worker does."""
    from scrapy_redis import picklecompat

    from crawler.scheduling.lease_queue import LeaseQueue
    from crawler.scheduling.sealed import SealedSerializer

    class Named:
        name = spider

    server = redis.Redis.from_url(REDIS_URL)
    key = f"{env['REDIS_KEY_PREFIX']}sched:{{{spider}}}"
    return LeaseQueue(
        server, Named(), key, serializer=SealedSerializer(picklecompat, crawl_keyring()), token=token, lease_seconds=300
    )


def test_higher_priority_first_and_start_urls_from_redis(job, sandbox, tmp_path):
    lab = Lab(sandbox["lab"])
    queue = staged_queue(job, "lab_feed")
    for n, priority in [(1, 0), (2, 5), (3, -3), (4, 5), (5, 10)]:
        queue.push(Request(f"{lab.base}/page/{n}", priority=priority))
    client = redis.Redis.from_url(REDIS_URL)
    start_key = f"{job['REDIS_KEY_PREFIX']}start:lab_feed"
    feed = [f"{lab.base}/page/6", json.dumps({"url": f"{lab.base}/page/7", "priority": 20}), "not a url"]
    client.rpush(start_key, *feed)
    out = tmp_path / "out.jsonl"
    proc = worker(job, FEED, "-O", f"{out}:jsonlines", log=tmp_path / "w.log")
    assert proc.wait(timeout=60) == 0, (tmp_path / "w.log").read_text()[-3000:]
    paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    staged = [p for p in paths if p in {f"page/{n}" for n in range(1, 6)}]
    assert staged == ["page/5", "page/2", "page/4", "page/1", "page/3"]  # priority, then FIFO
    assert sorted(paths) == [f"page/{n}" for n in range(1, 8)]
    assert client.llen(start_key) == 0
    log = (tmp_path / "w.log").read_text()
    assert "Skipped a start entry" in log and "not a url" not in log
    client.close()


def test_closing_worker_keeps_shared_state_others_need(job, sandbox, tmp_path):
    lab = Lab(sandbox["lab"])
    queue = staged_queue(job, "lab_feed")
    for n in range(30):
        queue.push(Request(f"{lab.base}/page/{n}"))
    other = staged_queue(job, "lab_feed", token="other-worker")
    other_lease, _ = other.pop(time.time())  # another live worker holds this one
    proc = worker(job, FEED, log=tmp_path / "w.log", settings={"CLOSESPIDER_ITEMCOUNT": 3})
    assert proc.wait(timeout=60) == 0, (tmp_path / "w.log").read_text()[-3000:]
    assert "Closing spider (closespider_itemcount)" in (tmp_path / "w.log").read_text()
    counts = queue.counts()
    assert counts["leased"] == 1  # only the other worker's; ours went back to the queue
    assert 20 <= counts["queued"] < 29
    assert other.ack([other_lease]) == 1  # the other worker's lease is intact
    assert keys(job, "sched:{lab_feed}:queue")


@pytest.mark.integration
def test_dupefilter_uses_the_configured_request_fingerprinter():
    from scrapy.utils.test import get_crawler

    from crawler.scheduling.dupefilter import RedisDupeFilter
    from crawler.scheduling.sealed import keyed_fingerprint

    crawler = get_crawler(settings_dict={"REQUEST_FINGERPRINTER_CLASS": "scrapy.utils.request.RequestFingerprinter"})
    server = redis.Redis.from_url(REDIS_URL)
    key = f"test:{uuid.uuid4().hex}:dupefilter"
    try:
        df = RedisDupeFilter.for_scheduler(server, key, crawler)
        request = Request("http://example.invalid/a?b=1&a=2")
        # Scrapy's fingerprint, keyed with the blind-index key (no bare SHA-1 of a URL in Redis)
        assert df.request_fingerprint(request) == keyed_fingerprint(
            df.ring, crawler.request_fingerprinter.fingerprint(request)
        )
        assert not df.request_seen(request)
        assert df.request_seen(Request("http://example.invalid/a?a=2&b=1"))  # canonicalised by Scrapy's fingerprinter
    finally:
        server.delete(key)
        server.close()


@pytest.mark.integration
def test_expired_lease_returns_to_the_queue_and_only_its_holder_acks():
    from crawler.scheduling.lease_queue import LeaseQueue

    class Named:
        name = "unit"

    server = redis.Redis.from_url(REDIS_URL)
    key = f"test:{uuid.uuid4().hex}"
    try:
        # the time is the callers' (each pop and renew is given it): the test moves it itself
        now = float(int(time.time()))  # whole seconds: now + 3 is exact in milliseconds
        dead = LeaseQueue(server, Named(), key, token="dead", lease_seconds=3)
        live = LeaseQueue(server, Named(), key, token="live", lease_seconds=30)
        dead.push(Request("http://example.invalid/1", priority=1))
        dead.push(Request("http://example.invalid/2"))
        lease, request = dead.pop(now)
        assert request.url.endswith("/1")
        assert live.pop(now)[1].url.endswith("/2")
        assert live.pop(now + 2.9) is None  # /1 is leased, not yet expired
        again, request = live.pop(now + 3)
        assert live.last_expired == 1 and request.url.endswith("/1")
        assert dead.ack([lease]) == 0 and dead.renew([lease], now + 3) == [lease]  # lost to the live worker
        assert live.ack([again]) == 1
        assert live.counts() == {"queued": 0, "delayed": 0, "leased": 1}
    finally:
        server.delete(*server.keys(key + "*"))
        server.close()


@pytest.mark.integration
def test_two_workers_queueing_one_request_queue_it_once_and_a_seen_push_acks_nothing():
    """Check, push and mark are one Lua step: the second of two workers that both passed the early
    check queues nothing, and keeps its parent's lease for its own ack."""
    from crawler.scheduling.lease_queue import LeaseQueue

    class Named:
        name = "unit"

    server = redis.Redis.from_url(REDIS_URL)
    key = f"test:{uuid.uuid4().hex}"
    seen_key = f"{key}:dupefilter"
    try:
        first = LeaseQueue(server, Named(), key, token="first", lease_seconds=30)
        second = LeaseQueue(server, Named(), key, token="second", lease_seconds=30)
        second.push(Request("http://example.invalid/parent"))
        parent, _ = second.pop(time.time())
        payload = first.encode(Request("http://example.invalid/child"))
        assert first.push_encoded(payload, 0, seen=(seen_key, "fp-child")) == 0
        assert second.push_encoded(payload, 0, replaces=parent, seen=(seen_key, "fp-child")) == -1
        assert first.counts() == {"queued": 1, "delayed": 0, "leased": 1}  # the child once; the parent still held
        assert server.smembers(seen_key) == {b"fp-child"}
        assert second.push_encoded(first.encode(Request("http://example.invalid/other")), 0, replaces=parent) == 1
    finally:
        server.delete(*server.keys(key + "*"))
        server.close()


def test_retries_wait_in_the_shared_delayed_set_and_replace_their_lease(job, sandbox, db, tmp_path):
    lab = Lab(sandbox["lab"], fail_mode="first_n", fail_n=2, fail_status=503, retry_after=1)
    proc = worker(job, TREE, "-a", f"base={lab.base}", "-a", "limit=30", log=tmp_path / "w.log")
    assert proc.wait(timeout=90) == 0, (tmp_path / "w.log").read_text()[-3000:]
    log = (tmp_path / "w.log").read_text()
    assert lab.page_requests() == Counter(dict.fromkeys(range(30), 3))  # two 503s, then the page
    assert sorted(rows(db, lab)) == list(range(30))
    assert "'scheduler/deferred/retry': 60" in log
    assert "'scheduler/leases/acked': 90" in log  # each attempt's lease acked (two by its retry)
    assert keys(job, "sched:*") == [job["REDIS_KEY_PREFIX"].encode() + b"sched:{lab_tree}:stats"]


def test_sigterm_returns_leases_and_another_worker_finishes_the_job(job, sandbox, db, tmp_path):
    lab = Lab(sandbox["lab"], delay=0.2)
    args = ["-a", f"base={lab.base}", "-a", "limit=200"]
    first = worker(job, TREE, *args, log=tmp_path / "first.log", settings={"CONCURRENT_REQUESTS": 4})
    deadline = time.monotonic() + 60
    while lab.stats()["requests"] < 20:
        assert time.monotonic() < deadline and first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        time.sleep(0.1)
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) == 0, (tmp_path / "first.log").read_text()[-3000:]
    counts = staged_queue(job, "lab_tree").counts()
    assert counts["leased"] == 0 and counts["queued"] > 0  # nothing left leased by the stopped worker
    done = len(rows(db, lab))
    assert 0 < done < 200
    second = worker(job, TREE, *args, log=tmp_path / "second.log")  # its start request is a duplicate: it resumes
    assert second.wait(timeout=90) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert sorted(rows(db, lab)) == list(range(200))
    assert set(lab.page_requests()) == set(range(200))
