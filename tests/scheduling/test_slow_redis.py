"""The shared scheduler never makes the reactor wait on Redis: a crawl through a Redis 50 ms away
(each way) keeps the reactor's loop lag far below one round trip, and still crawls every page."""

from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from pathlib import Path

from delay_proxy import DelayProxy
from test_shared_scheduler import Lab, job, keys, rows, worker  # noqa: F401 (job: the fixture)

from support import REDIS_URL

LAG = str(Path(__file__).resolve().parent / "lab_lag_spider.py")
DELAY = 0.05  # per chunk and direction: a round trip to Redis takes at least 100 ms
# Lateness of a 5 ms timer on the reactor, less the time the thread waited for a CPU (a busy
# CI machine; see lab_lag_spider.py). A blocking scheduler waits >= 100 ms per Redis call and
# makes several per page: its median sample is hundreds of ms late (measured: p50 640 ms,
# p99 5.2 s). The pump leaves only the crawl's own work on the reactor (parsing, pickling,
# pipelines): p95 ~10 ms. The bound is on the 95th percentile: this sandboxed 2-core machine
# stalls a process for ~100 ms now and then (not counted as CPU wait), in about 1 % of the
# samples, as much with Scrapy's own in-memory scheduler and no Redis at all.
P95_BOUND_MS = 40


def test_reactor_loop_lag_stays_low_with_a_slow_redis(job, sandbox, db, tmp_path):  # noqa: F811
    lab = Lab(sandbox["lab"])
    limit = 300
    target = urllib.parse.urlsplit(REDIS_URL)
    out = tmp_path / "lag.json"
    with DelayProxy(target.hostname, target.port or 6379, delay=DELAY) as proxy:
        env = dict(job, REDIS_URL=f"redis://127.0.0.1:{proxy.port}{target.path or '/0'}")
        args = ["-a", f"base={lab.base}", "-a", f"limit={limit}"]
        proc = worker(env, LAG, *args, settings={"LOOPLAG_FILE": out}, log=tmp_path / "w.log")
        assert proc.wait(timeout=300) == 0, (tmp_path / "w.log").read_text()[-3000:]
    measured = json.loads(out.read_text())
    lag = measured["lag_ms"]
    summary = "; ".join(
        f"{name} p50 {s[len(s) // 2]:.1f} ms, p95 {s[int(len(s) * 0.95)]:.1f} ms, p99 {s[int(len(s) * 0.99)]:.1f} ms, "
        f"max {s[-1]:.1f} ms"
        for name, s in (("lag", lag), ("wall-clock", measured["raw_ms"]))
    )
    print(f"loop lag over {len(lag)} samples: {summary}")
    assert lab.page_requests() == Counter(range(limit))  # every page, once
    assert sorted(rows(db, lab)) == list(range(limit))
    assert keys(job, "sched:*") == [job["REDIS_KEY_PREFIX"].encode() + b"sched:{lab_tree}:stats"]  # cleaned
    assert len(lag) >= 50, lag  # the probe ran through the crawl
    assert lag[int(len(lag) * 0.95)] < P95_BOUND_MS, summary
