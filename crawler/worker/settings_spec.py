"""Settings of the scan worker (crawler/worker/): queued scans run as crawls."""

from __future__ import annotations

from crawler.setting import Component, Setting

WORKER = Component(
    "Scan worker",
    "crawler/worker/",
    (
        Setting("WORKER_CONCURRENCY", "int", "2", "scans one `python -m crawler.worker` runs at once", min=1, max=64),
        Setting(
            "SCAN_MAX_ATTEMPTS",
            "int",
            "3",
            "crawls of one scan before it is `failed` (a crashed crawl or an unreachable database is retried "
            "with backoff)",
            min=1,
            max=20,
        ),
        Setting(
            "SCRAPYD_URLS",
            "str",
            "",
            "comma-separated scrapyd nodes; when set, the worker schedules each scan there (the scan id is the only "
            "argument) instead of running the crawl itself",
        ),
    ),
)

COMPONENTS = (WORKER,)
