"""The rate limiter against a server that publishes its budget: no 429 after the
first response, at least 90% of the budget used, and two workers sharing Redis
stay within one limit."""

import functools
import operator
import subprocess

from lab_support import Tenant, fetch_command, run_lab

from support import REDIS_URL, ROOT

LIMIT, WINDOW = 100, 4


def full_windows(stats):
    return stats["windows"][1:-1]  # the first opens before the budget is known; the last is partial


def test_a_published_budget_is_used_without_429s(crawl_env, sandbox, tmp_path):
    tenant = Tenant(sandbox["lab"], rate_limit=LIMIT, rate_window=WINDOW)
    settings = {"CONCURRENT_REQUESTS": 16, "RATELIMIT_RESET_MARGIN": 0.1}  # the lab rounds Reset up
    result, records = run_lab(crawl_env, tmp_path, tenant.base, count=480, settings=settings)
    assert result.returncode == 0, result.stderr[-3000:]
    stats = tenant.stats()
    assert stats["rate_limited"] == 0, stats["rate_limited_at"][:5]
    assert len(records) == 480 and all(r["status"] == 200 for r in records)
    windows = full_windows(stats)
    assert len(windows) >= 3
    used = [w["allowed"] / LIMIT for w in windows]
    assert min(used) >= 0.9, used


def test_two_workers_sharing_redis_stay_within_one_limit(crawl_env, sandbox, tmp_path, redis_prefix):
    tenant = Tenant(sandbox["lab"], rate_limit=60, rate_window=3)
    env = dict(crawl_env, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=redis_prefix + "rl:")
    settings = {"RATELIMIT_ADAPTIVE": "false", "RATELIMIT_DEFAULT_RPS": "19"}  # 57 per 3 s window, together
    # two separate jobs (each crawls all 150 pages) that share one rate limit through Redis
    workers = [
        subprocess.Popen(
            [
                *fetch_command(tenant.base, count=150),
                *functools.reduce(operator.iadd, (["-s", f"{k}={v}"] for k, v in settings.items()), []),
                "-s",
                f"SCHEDULER_JOB=worker{n}",
            ],
            cwd=ROOT,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    for worker in workers:
        _, stderr = worker.communicate(timeout=120)
        assert worker.returncode == 0, stderr[-3000:]
    stats = tenant.stats()
    assert stats["rate_limited"] == 0
    assert stats["statuses"]["200"] == 300
    assert max(w["allowed"] for w in stats["windows"]) <= 60
