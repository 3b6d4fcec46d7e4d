"""Circuit breaker, retries with dead letters and replay, expiring tokens and block
detection, in real crawls against the sandbox lab."""

import itertools
import time

import orjson
import pytest
from lab_support import Tenant, run_lab

from support import REDIS_URL, crawl_keyring, run_scrapy

FAST = {"RATELIMIT_DEFAULT_RPS": 200, "RETRY_BACKOFF_BASE": 0.05, "RETRY_BACKOFF_MAX": 0.2, "CIRCUIT_ENABLED": "false"}


def dead_letters(db, base):
    rows = db.execute(
        "SELECT id, spider, reason, attempts, last_status, payload_ciphertext FROM dead_letters "
        "WHERE kind = 'request' AND replayed_at IS NULL ORDER BY id"
    ).fetchall()
    ring, mine = crawl_keyring(), []
    for row in rows:
        payload = orjson.loads(ring.decrypt(row[5], f"dead_letter|request|{row[1]}".encode()))
        if payload["request"]["url"].startswith(base):
            mine.append((row, payload))
    return mine


def test_retries_recover_from_flaky_responses_and_truncated_json(crawl_env, sandbox, tmp_path):
    tenant = Tenant(sandbox["lab"], fail_mode="first_n", fail_n=2, truncate_json_first_n=0)
    result, records = run_lab(crawl_env, tmp_path, tenant.base, count=20, settings=FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(r["n"] for r in records) == list(range(20)) and all(r["status"] == 200 for r in records)
    assert all(r["retries"] == 2 for r in records)

    truncated = Tenant(sandbox["lab"], truncate_json_first_n=1)
    result, records = run_lab(crawl_env, tmp_path, truncated.base, count=10, settings=FAST)
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(r["status"] == 200 and r["retries"] == 1 for r in records)
    assert truncated.stats()["truncated"] == 10


def test_exhausted_requests_become_dead_letters_and_replay_recrawls_them(crawl_env, sandbox, tmp_path, db):
    tenant = Tenant(sandbox["lab"], fail_mode="always", fail_status=503)
    settings = dict(FAST, RETRY_TIMES=1, CIRCUIT_ENABLED="false")
    result, records = run_lab(crawl_env, tmp_path, tenant.base, count=6, settings=settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(r["status"] for r in records) == [503] * 6  # the spider sees the final error
    letters = dead_letters(db, tenant.base)
    assert len(letters) == 6
    assert {(row[2], row[3], row[4]) for row, _ in letters} == {("http_503", 2, 503)}
    assert all(payload["request"]["callback"] == "parse" for _, payload in letters)

    tenant.configure(fail_mode="off")
    replay_out = tmp_path / "replayed.jsonl"
    replay = run_scrapy(
        [
            "crawl",
            "replay_dead_letters",
            "-a",
            "spider=fetch",
            "-a",
            "reason=http_503",
            "-O",
            f"{replay_out}:jsonlines",
            "-s",
            "RATELIMIT_DEFAULT_RPS=200",
        ],
        crawl_env,
    )
    assert replay.returncode == 0, replay.stderr[-3000:]
    replayed = [orjson.loads(line) for line in replay_out.read_text().splitlines()]
    assert sorted(r["n"] for r in replayed) == list(range(6)), replay.stderr[-3000:]
    assert all(r["status"] == 200 for r in replayed)
    assert dead_letters(db, tenant.base) == []  # all marked replayed
    assert tenant.stats()["statuses"]["200"] == 6


def test_replay_refuses_unknown_spiders(crawl_env):
    result = run_scrapy(["crawl", "replay_dead_letters", "-a", "spider=nope"], crawl_env)
    assert result.returncode == 2 and "error: -a spider: no spider named 'nope'" in result.stderr


@pytest.mark.parametrize("shared", [False, True], ids=["in-process", "redis"])
def test_an_open_circuit_defers_requests_lets_one_probe_through_and_loses_none(
    crawl_env, sandbox, tmp_path, shared, redis_prefix
):
    if shared:
        crawl_env = dict(crawl_env, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=f"{redis_prefix}circuit:")
    tenant = Tenant(sandbox["lab"])
    tenant.call("down", {"seconds": 5.0})  # longer than a loaded machine takes to start the crawl
    settings = dict(
        FAST,
        CIRCUIT_ENABLED="true",
        CIRCUIT_FAILURE_THRESHOLD=3,
        CIRCUIT_RESET_SECONDS=1,
        RETRY_TIMES=10,
        CONCURRENT_REQUESTS=4,
        RETRY_BACKOFF_BASE=0.1,
    )
    started = time.time()
    result, records = run_lab(crawl_env, tmp_path, tenant.base, count=30, settings=settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(r["n"] for r in records) == list(range(30)), records
    assert all(r["status"] == 200 for r in records), [r for r in records if r["status"] != 200]
    assert "circuit 127.0.0.1: opened" in result.stderr and "circuit 127.0.0.1: closed" in result.stderr
    stats = tenant.stats()
    down_arrivals = [a for a in stats["arrivals"] if a[2]]
    # while down: the failures that opened it (at most concurrency + threshold), then single probes a second apart
    opened_at = down_arrivals[min(len(down_arrivals) - 1, 6)][0]
    later = [a[0] for a in down_arrivals if a[0] > opened_at + 0.5]
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(later)), later
    assert time.time() - started < 60
