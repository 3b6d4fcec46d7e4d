"""Settings of the scan worker (crawler/worker/): queued scans run as crawls."""

from __future__ import annotations

from crawler.setting import Component, Setting


def check_cron(value) -> None:
    import croniter

    if not croniter.croniter.is_valid(value):
        raise ValueError("expected a cron expression such as `* * * * *` (a 6th column: seconds)")


WORKER = Component(
    "Scan worker",
    "crawler/worker/",
    (
        Setting("WORKER_CONCURRENCY", "int", "2", "scans one `python -m crawler.worker` runs at once", min=1, max=64),
        Setting(
            "WORKER_FORKSERVER",
            "bool",
            "true",
            "fork each local crawl from a warm process that has imported Scrapy and the project once, instead of "
            "starting a new interpreter per scan (about 1.5 CPU-seconds saved per scan)",
        ),
        Setting(
            "WORKER_SHARED_BROWSER",
            "bool",
            "true",
            "one Chromium per worker process (a Playwright browser server on 127.0.0.1), shared by its local crawls, "
            "each with contexts of its own closed when it disconnects, instead of one launched and closed per scan",
        ),
        Setting(
            "WORKER_SHARED_BROWSER_MAX_CRAWLS",
            "int",
            "200",
            "the shared Chromium is replaced after this many crawls, once they ended (0: never)",
            min=0,
        ),
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
        Setting(
            "SCAN_RETRY_SECONDS",
            "number",
            "10",
            "wait before a scan's first retry; doubled for each retry after it",
            min=0,
            max=3600,
        ),
        Setting(
            "WORKER_STALLED_SECONDS",
            "number",
            "30",
            "a worker silent (no heartbeat) this long is taken for dead: the scans it ran are queued again",
            min=1,
            max=3600,
        ),
        Setting(
            "WORKER_SHUTDOWN_SECONDS",
            "number",
            "0",
            "on SIGTERM, how long running scans may take to finish before they are stopped and handed back "
            "to the queue (0: wait for them)",
            min=0,
            max=86400,
        ),
        Setting(
            "REMOVAL_SCHEDULE_CRON",
            "str",
            "* * * * *",
            "how often the worker looks for due removal work (retries, e-mail polls, confirmation re-scans) and "
            "monitored people due for a maintenance re-scan (RESCAN_INTERVAL_HOURS); cron, with an optional 6th "
            "column for seconds (`* * * * * */2`: every 2 s)",
            check=check_cron,
        ),
    ),
)

COMPONENTS = (WORKER,)
