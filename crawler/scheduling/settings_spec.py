"""Settings of shared scheduling (with REDIS_URL): one job's queue, leases, dupefilter and stats."""

from __future__ import annotations

from crawler.setting import Component, Setting

SCHEDULER = Component(
    "Shared scheduling",
    "crawler/scheduling/",
    (
        Setting(
            "SCHEDULER_KEY",
            "str",
            "%(prefix)ssched:{%(job)s}",
            "base key of a job's shared state (`prefix` = `REDIS_KEY_PREFIX`, `job` = the job id, `spider` = the "
            "spider name); same key = same job",
            accepts="template",
        ),
        Setting(
            "SCHEDULER_JOB",
            "str",
            "",
            "names the job explicitly (`-s SCHEDULER_JOB=nightly` -> job `<spider>:nightly`); empty: "
            "`<spider>:<scan_id>` for scans, else `<spider>:<digest of the spider arguments>` (`<spider>` "
            "without arguments), so workers started with the same command share one job",
        ),
        Setting(
            "SCHEDULER_START_KEY",
            "str",
            "%(prefix)sstart:%(spider)s",
            "Redis list read by `RedisStartMixin` spiders (start URLs or JSON requests)",
            accepts="template",
        ),
        Setting(
            "SCHEDULER_LEASE_SECONDS",
            "number",
            "60",
            "lease length; renewed every third of it; a dead worker's requests return after it",
            above=0,
        ),
        Setting(
            "SCHEDULER_ACK_SECONDS",
            "number",
            "1",
            "finished requests are acked (after a BulkWriter flush) in batches this often",
            above=0,
        ),
        Setting(
            "SCHEDULER_IDLE_CLOSE_SECONDS",
            "number",
            "3",
            "close after this long with nothing queued, delayed or leased anywhere; 0 = never",
            min=0,
        ),
        Setting(
            "SCHEDULER_POLL_MIN_SECONDS",
            "number",
            "0.05",
            "polling an empty queue backs off from this many seconds",
            above=0,
        ),
        Setting("SCHEDULER_POLL_MAX_SECONDS", "number", "1", "... up to this many", above=0),
        Setting(
            "SCHEDULER_PREFETCH",
            "int",
            "0",
            "requests a worker leases ahead, in the background, so the engine never waits on Redis (refilled "
            "below half); 0 = half `CONCURRENT_REQUESTS` (at least 1), so a worker never holds every chain of a "
            "job others share (an events ingestion's partitions); larger is a little faster for one worker",
            min=0,
        ),
        Setting(
            "SCHEDULER_JOB_PRIORITY",
            "int",
            "0",
            "added to every request's priority, higher first (spider argument `job_priority` wins; scrapyd: "
            "`-d job_priority=N`)",
        ),
        Setting(
            "SCHEDULER_PERSIST",
            "bool",
            "false",
            "keep a finished job's queue and dupefilter (the events spider then discovers again at each run)",
        ),
        Setting(
            "SCHEDULER_DUPEFILTER_BLOOM",
            "bool",
            "false",
            "Bloom filter instead of an exact fingerprint set (very large crawls; false positives skip requests)",
        ),
        Setting(
            "SCHEDULER_BLOOM_CAPACITY",
            "int",
            "10000000",
            "Bloom sizing: this many requests (17 MiB; grows by layers beyond)",
            min=1,
        ),
        Setting("SCHEDULER_BLOOM_ERROR_RATE", "fraction", "0.001", "its false-positive rate"),
        Setting(
            "SCHEDULER_STATS_SECONDS",
            "number",
            "10",
            "how often a worker adds its counters to the shared stats hash",
            above=0,
        ),
    ),
)

COMPONENTS = (SCHEDULER,)
