"""All configuration of the project, read from the environment (12-factor).

Each component declares the settings it reads beside its code (name, type,
default, range, doc: the ``settings_spec`` modules listed in
``crawler/settings_registry.py``); every declared setting is read here from the
environment variable of the same name, else its declared default. Each is also a
Scrapy setting of that name, so ``scrapy crawl -s DATABASE_URL=...`` and
scrapyd's ``setting=DATABASE_URL=...`` override the environment. Values stay raw
strings here; ``crawler.config`` validates them once at start (a bad value stops
the process with one line naming the variable). Nothing else in the project reads
``os.environ``. The README's "Settings" tables are generated from the declarations.

Below them: Scrapy's own settings and the component wiring, written out.
"""

import os

from crawler.settings_registry import from_environment

# REDIS_URL, DATABASE_URL, RATELIMIT_*, ... (see the README's "Settings")
_declared = from_environment(os.environ)
globals().update(_declared)

BOT_NAME = "crawler"
SPIDER_MODULES = ["spiders"]
NEWSPIDER_MODULE = "spiders"
# Our `crawl` command validates configuration and the database before the
# reactor starts, so a bad value is one line, not a traceback.
COMMANDS_MODULE = "crawler.commands"

# --- Logging ------------------------------------------------------------------
# Scrapy wants None, not "", for "no log file".
LOG_FILE = _declared["LOG_FILE"] or None
# Our redacting handler replaces Scrapy's root handler (crawler.observability.logs).
LOG_INSTALL_ROOT_HANDLER = False
# Item contents never reach the log (they are personal data).
LOG_FORMATTER = "crawler.observability.logs.PrivacyLogFormatter"

# --- Crawling -----------------------------------------------------------------
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) privacy-crawler/0.1 (+https://example.invalid/bot)"
# Scans act for the data subject on their own data; politeness comes from the
# rate limits, and robots.txt round trips would only slow every new host.
ROBOTSTXT_OBEY = False
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
DOWNLOAD_TIMEOUT = 30
# The telnet console and Scrapy 2.19's remote-control server run arbitrary
# code inside a process that holds personal data in memory: off (REMOTE_CONTROL_ENABLED is declared, false).
TELNETCONSOLE_ENABLED = False
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"

# --- Components, in data-flow order ------------------------------------------
EXTENSIONS = {
    # validates configuration for in-process crawls and installs the redacting log handler
    "crawler.runtime.RuntimeCheck": 0,
    # scans row lifecycle: pending -> running -> completed / failed, counters
    "crawler.scans.ScanTracker": 100,
    # scan events (progress, found_data, error, completed) -> log and the scan's Redis channel
    "crawler.observability.scan_events.ScanEvents": 110,
    # logs and counts what a SIGTERM waits for (Scrapy drains; a second signal stops at once)
    "crawler.observability.shutdown.GracefulShutdown": 120,
    # /metrics (Prometheus) and /health on METRICS_PORT
    "crawler.observability.server.ObservabilityServer": 130,
    # OpenTelemetry traces when OTEL_ENABLED
    "crawler.observability.tracing.Tracing": 140,
    # with REDIS_URL: each worker adds its counters to the job's shared stats hash (HINCRBY)
    "crawler.scheduling.stats.SharedStats": 900,
    # closes the database pools after everything else has written
    "crawler.db.pool.PoolCloser": 1000,
}

# Requests that must wait long (backoff, Retry-After, open circuit) wait here, not in a download slot.
# With REDIS_URL: one job's queue shared by every worker, with leases (crawler/scheduling/shared.py).
SCHEDULER = (
    "crawler.scheduling.shared.SharedScheduler"
    if _declared["REDIS_URL"]
    else "crawler.scheduling.deferring.DeferringScheduler"
)

# process_request runs top to bottom, process_response and process_exception bottom to top:
# blocks are classified first, the rate limiter and circuit learn from them, retry decides last.
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    # backoff with full jitter, Retry-After, truncated JSON; dead letters when attempts run out
    "middlewares.retry.RetryMiddleware": 550,
    # per domain: open after repeated failures, one probe after the cool-down
    "middlewares.circuit_breaker.CircuitBreakerMiddleware": 560,
    # after a captcha: pause the key, then a slower rate for it (handed to the rate limiter)
    "middlewares.slowdown.BlockSlowdownMiddleware": 565,
    # token bucket per key, paced by the server's X-RateLimit budget, Retry-After pauses
    "middlewares.rate_limit.RateLimitMiddleware": 570,
    # bearer tokens (refreshed ahead of expiry and on 401) and static API keys; after the rate
    # limiter, so the token a request carries is checked when it leaves, not before it waited
    "middlewares.auth_token.AuthTokenMiddleware": 575,
    # captcha / interstitial / soft rate limit / blocked pages (after decompression at 590)
    "middlewares.blocks.BlockDetectionMiddleware": 585,
}

# Pages marked ``meta["playwright"]`` (site definitions with render: browser, evidence
# screenshots) are rendered by scrapy-playwright in the system Chromium; every other
# request goes through Scrapy's own HTTP handler. The browser starts on first use.
DOWNLOAD_HANDLERS = {
    "http": "crawler.browser.LazyPlaywrightDownloadHandler",
    "https": "crawler.browser.LazyPlaywrightDownloadHandler",
}
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS = {
    "executable_path": _declared["CHROMIUM_PATH"],
    "headless": True,
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ],
}
# Declared in crawler/settings_spec.py: PLAYWRIGHT_MAX_CONTEXTS, PLAYWRIGHT_MAX_PAGES_PER_CONTEXT,
# PLAYWRIGHT_CONTEXT_MAX_PAGES (contexts recycled: flat memory), PLAYWRIGHT_CONTEXT_KEEP_STORAGE,
# PLAYWRIGHT_ABORT_RESOURCE_TYPES (images, media, fonts; never for screenshots) and
# PLAYWRIGHT_PROCESS_GUARD (Chromium started by crawler/chromium_launcher.py: none outlives the crawl).
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000

ITEM_PIPELINES = {
    # normalise (E.164 phones, e-mails, addresses, UTC timestamps); invalid -> dead letters
    "pipelines.validate.ValidatePipeline": 100,
    # candidates of a scan: accepted (confidence, found_data) or rejected candidates (audit rows)
    "pipelines.match.MatchPipeline": 150,
    # drop stored listings (exact), group the same person (fuzzy), Bloom-check event ids;
    # before encryption: fuzzy matching needs clear values, and nothing is sealed twice
    "pipelines.dedup.DedupPipeline": 200,
    # evidence: store screenshots encrypted, content-addressed, under SCREENSHOTS_DIR
    "pipelines.screenshots.ScreenshotPipeline": 300,
    # seal personal data: AES-256-GCM ciphertexts + blind indexes
    "pipelines.encrypt.EncryptPipeline": 400,
    # buffered COPY + INSERT ... ON CONFLICT DO NOTHING, checkpoints in the same transaction
    "pipelines.postgres.PostgresPipeline": 800,
}
