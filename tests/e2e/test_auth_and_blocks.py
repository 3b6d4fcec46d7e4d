"""Expiring bearer tokens over a long run, a revoked token, and block pages, in real crawls."""

import itertools
import json
import threading
import time

from lab_support import Tenant, run_lab

from support import crawl_keyring, run_scrapy

FAST = {"RATELIMIT_DEFAULT_RPS": 40, "RETRY_BACKOFF_BASE": 0.05, "RETRY_BACKOFF_MAX": 0.2, "CIRCUIT_ENABLED": "false"}


def settings_args(settings: dict) -> list[str]:
    return [arg for name, value in settings.items() for arg in ("-s", f"{name}={value}")]


def auth_settings(tenant):
    return dict(
        FAST, AUTH_TOKEN_URL=f"{tenant.base}/oauth/token", AUTH_CLIENT_ID="lab-client", AUTH_CLIENT_SECRET="lab-secret"
    )


def test_short_lived_tokens_are_refreshed_once_per_lifetime(crawl_env, sandbox, tmp_path):
    tenant = Tenant(sandbox["lab"], token_ttl=2)
    result, records = run_lab(
        crawl_env, tmp_path, tenant.base, path="protected", count=300, settings=auth_settings(tenant)
    )  # (about 7.5 s at 40/s)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(records) == 300 and all(r["status"] == 200 for r in records)
    stats = tenant.stats()
    assert stats["unauthorized"] == {"missing": 0, "unknown": 0, "expired": 0}
    issued = stats["token_issued_at"]
    gaps = [b - a for a, b in itertools.pairwise(issued)]
    assert len(issued) >= 4
    # one refresh per lifetime (the margin is a fifth of 2 s); "before expiry" is the zero expired 401s above
    # (a crawl the CPU stalls may send nothing for a while and refresh later than 2 s after: no upper bound)
    assert all(gap >= 1.4 for gap in gaps), gaps
    assert "lab-secret" not in result.stderr and "Bearer " not in result.stderr


def test_a_revoked_token_is_refreshed_once_and_the_requests_replayed(crawl_env, sandbox, tmp_path):
    tenant = Tenant(sandbox["lab"], token_ttl=3600)

    def revoke_mid_crawl():  # once some requests went through with the first token (start-up time varies)
        deadline = time.monotonic() + 60
        while tenant.stats()["statuses"].get("200", 0) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        tenant.call("revoke", {})

    revoker = threading.Thread(target=revoke_mid_crawl)
    revoker.start()
    settings = dict(auth_settings(tenant), RATELIMIT_DEFAULT_RPS=20, CONCURRENT_REQUESTS=8)
    result, records = run_lab(crawl_env, tmp_path, tenant.base, path="protected", count=80, settings=settings)
    revoker.join()
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(records) == 80 and all(r["status"] == 200 for r in records)
    stats = tenant.stats()
    assert stats["tokens_issued"] == 2  # the first and one refresh, however many requests got a 401
    assert 1 <= stats["unauthorized"]["unknown"] <= 8


def test_block_pages_are_retried_then_dead_lettered_never_parsed(crawl_env, sandbox, tmp_path, db):
    tenant = Tenant(sandbox["lab"])
    settings = dict(FAST, RETRY_TIMES=1)
    for kind, reason in [
        ("captcha", "block_captcha"),
        ("soft-limit", "block_rate_limited"),
        ("interstitial", "block_interstitial"),
        ("forbidden", "block_blocked"),
    ]:
        out = tmp_path / f"{kind}.jsonl"
        result = run_scrapy(
            [
                "crawl",
                "fetch",
                "-a",
                f"urls={tenant.base}/blocked/{kind}",
                "-O",
                f"{out}:jsonlines",
                *settings_args(dict(settings, RATELIMIT_BLOCK_PAUSE_SECONDS=0.1)),
            ],
            crawl_env,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        records = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(records) == 1 and "retries" not in records[0], (kind, records)  # never reached parse()
        assert records[0]["error"] in ("IgnoreRequest", "HttpError"), (kind, records)
        assert f"'blocks/{reason[6:]}'" in result.stderr, result.stderr[-2500:]
        count = db.execute("SELECT count(*) FROM dead_letters WHERE kind = 'request' AND reason = %s", (reason,))
        assert count.fetchone()[0] >= 1, kind


def test_soft_rate_limit_pages_pause_the_site(crawl_env, sandbox, tmp_path):
    tenant = Tenant(sandbox["lab"], block_after=5, block_window=2)
    settings = dict(FAST, RATELIMIT_BLOCK_PAUSE_SECONDS=2.5, RETRY_TIMES=3)
    started = time.time()
    result, records = run_lab(crawl_env, tmp_path, tenant.base, path="page", count=12, settings=settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(r["n"] for r in records) == list(range(12)) and all(r["status"] == 200 for r in records)
    assert "paused 2.5s (soft rate-limit page)" in result.stderr
    assert time.time() - started >= 2.5


def test_a_token_endpoint_that_keeps_refusing_turns_requests_into_dead_letters(crawl_env, sandbox, tmp_path, db):
    tenant = Tenant(sandbox["lab"])
    settings = dict(auth_settings(tenant), AUTH_CLIENT_SECRET="wrong", AUTH_TOKEN_MAX_FAILURES=2)
    result, records = run_lab(crawl_env, tmp_path, tenant.base, path="protected", count=3, settings=settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(r["n"] for r in records) == [0, 1, 2] and {r["error"] for r in records} == {"IgnoreRequest"}
    assert tenant.stats()["invalid_client"] == 2  # two refreshes, a backoff apart; no burst
    rows = db.execute("SELECT spider, payload_ciphertext FROM dead_letters WHERE reason = 'auth_token_unavailable'")
    payloads = [crawl_keyring().decrypt(p, f"dead_letter|request|{s}".encode()) for s, p in rows.fetchall()]
    mine = [p for p in payloads if tenant.base.encode() in p]
    assert len(mine) == 3 and not any(b"wrong" in p or b"client_secret" in p for p in payloads)
    assert "wrong" not in result.stderr
