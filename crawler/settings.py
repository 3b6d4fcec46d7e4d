"""All configuration of the project, read from the environment (12-factor).

Every variable read here is also a Scrapy setting of the same name, so
``scrapy crawl -s DATABASE_URL=...`` and scrapyd's ``setting=DATABASE_URL=...``
override the environment. Values stay raw strings here; ``crawler.config``
validates them once at start (a bad value stops the process with one line
naming the variable). Nothing else in the project reads ``os.environ``.
The README's "Settings" section documents every name below.
"""

import os


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


BOT_NAME = "crawler"
SPIDER_MODULES = ["spiders"]
NEWSPIDER_MODULE = "spiders"
# Our `crawl` command validates configuration and the database before the
# reactor starts, so a bad value is one line, not a traceback.
COMMANDS_MODULE = "crawler.commands"

# --- Services --------------------------------------------------------------
# Empty DATABASE_URL: an embedded PostgreSQL is started under DATA_DIR.
DATABASE_URL = _env("DATABASE_URL")
# Empty REDIS_URL: one process, Scrapy's own scheduler, in-process state.
REDIS_URL = _env("REDIS_URL")
REDIS_KEY_PREFIX = _env("REDIS_KEY_PREFIX", "crawler:")
# Local state: embedded database, development keys, screenshots.
DATA_DIR = _env("DATA_DIR", ".data")
# Empty: <DATA_DIR>/screenshots.
SCREENSHOTS_DIR = _env("SCREENSHOTS_DIR")

# --- PostgreSQL -------------------------------------------------------------
PG_POOL_MIN_SIZE = _env("PG_POOL_MIN_SIZE", "1")
PG_POOL_MAX_SIZE = _env("PG_POOL_MAX_SIZE", "4")
PG_CONNECT_TIMEOUT = _env("PG_CONNECT_TIMEOUT", "5")
PG_BATCH_ROWS = _env("PG_BATCH_ROWS", "1000")
PG_FLUSH_SECONDS = _env("PG_FLUSH_SECONDS", "2")
# add() waits (backpressure) while this many rows are buffered
PG_MAX_BUFFER_ROWS = _env("PG_MAX_BUFFER_ROWS", "50000")
# transient database errors are retried for this long before a write fails
PG_RETRY_SECONDS = _env("PG_RETRY_SECONDS", "120")

# --- Pipelines ---------------------------------------------------------------
# Region assumed for phone numbers written without a country code.
VALIDATE_PHONE_REGION = _env("VALIDATE_PHONE_REGION", "US")
# A candidate listing whose match confidence (0-1) reaches this is the scan's target (findings);
# below it, a rejected candidate (kept for audit). 0.85: best measured by bench/matching.py.
MATCH_THRESHOLD = _env("MATCH_THRESHOLD", "0.85")
# Ages a listing may differ from the target's by and still agree (birthdays, the site's own date).
MATCH_AGE_TOLERANCE = _env("MATCH_AGE_TOLERANCE", "1")

# Exact dedup window for listings (seconds; 0 = forever).
DEDUP_WINDOW_SECONDS = _env("DEDUP_WINDOW_SECONDS", "86400")
# Bloom filter for event ids, per source: sized for this many ids at this
# false-positive rate; it grows by layers beyond that.
DEDUP_BLOOM_CAPACITY = _env("DEDUP_BLOOM_CAPACITY", "10000000")
DEDUP_BLOOM_ERROR_RATE = _env("DEDUP_BLOOM_ERROR_RATE", "0.001")
# Listings of one scan scoring at least this are grouped as the same person.
DEDUP_FUZZY_THRESHOLD = _env("DEDUP_FUZZY_THRESHOLD", "0.85")
# At most this many dedup filter calls wait on Redis at once (the rest queue here).
DEDUP_MAX_IN_FLIGHT = _env("DEDUP_MAX_IN_FLIGHT", "4")

# --- Scans: events and evidence ----------------------------------------------
# Per-site counters are written to the scan row at most this often while they change (0 = only at the end).
SCANS_UPDATE_SECONDS = _env("SCANS_UPDATE_SECONDS", "2")
# Scan lifecycle events to the log and, with REDIS_URL, to a pub/sub channel per scan.
SCAN_EVENTS_ENABLED = _env("SCAN_EVENTS_ENABLED", "true")
# Channel name template: {scan_id}, and {prefix} for REDIS_KEY_PREFIX.
SCAN_EVENTS_CHANNEL = _env("SCAN_EVENTS_CHANNEL", "scans:{scan_id}:events")
# A full-page screenshot of every accepted listing (Chromium through scrapy-playwright).
SCREENSHOTS_ENABLED = _env("SCREENSHOTS_ENABLED", "true")
# A screenshot not taken within this many seconds (rate-limit waits included) is recorded as failed.
SCREENSHOTS_TIMEOUT = _env("SCREENSHOTS_TIMEOUT", "180")

# --- Shared scheduling (with REDIS_URL; crawler/scheduling/) -----------------
# Base key of a job's shared state (queue, leases, dupefilter, stats); %(prefix)s = REDIS_KEY_PREFIX,
# %(job)s = the job: SCHEDULER_JOB when set, else the scan id (scan spiders) or the spider and a digest
# of its arguments, so workers started with the same command share one job and different crawls never mix.
SCHEDULER_KEY = _env("SCHEDULER_KEY", "%(prefix)ssched:{%(job)s}")
SCHEDULER_JOB = _env("SCHEDULER_JOB")
# Redis list a RedisStartMixin spider reads start URLs / JSON requests from.
SCHEDULER_START_KEY = _env("SCHEDULER_START_KEY", "%(prefix)sstart:%(spider)s")
# A popped request is leased this long, renewed every third of it; a dead worker's leases return to the queue.
SCHEDULER_LEASE_SECONDS = _env("SCHEDULER_LEASE_SECONDS", "60")
# Finished requests are acknowledged in batches this often (after the rows they produced are committed).
SCHEDULER_ACK_SECONDS = _env("SCHEDULER_ACK_SECONDS", "1")
# Close after this long with nothing queued, delayed or leased by any worker (0 = run forever).
SCHEDULER_IDLE_CLOSE_SECONDS = _env("SCHEDULER_IDLE_CLOSE_SECONDS", "3")
# Polling an empty queue backs off from MIN to MAX seconds.
SCHEDULER_POLL_MIN_SECONDS = _env("SCHEDULER_POLL_MIN_SECONDS", "0.05")
SCHEDULER_POLL_MAX_SECONDS = _env("SCHEDULER_POLL_MAX_SECONDS", "1")
# Added to every request's priority (higher first); scrapyd: -d setting=SCHEDULER_JOB_PRIORITY=N or -d job_priority=N.
SCHEDULER_JOB_PRIORITY = _env("SCHEDULER_JOB_PRIORITY", "0")
# true: keep a finished job's queue and dupefilter; false: the last worker to finish deletes them.
SCHEDULER_PERSIST = _env("SCHEDULER_PERSIST", "false")
# A Bloom filter instead of an exact set of fingerprints (very large crawls; false positives skip requests).
SCHEDULER_DUPEFILTER_BLOOM = _env("SCHEDULER_DUPEFILTER_BLOOM", "false")
# Sized for this many requests at this false-positive rate (17 MiB; it grows by layers beyond).
SCHEDULER_BLOOM_CAPACITY = _env("SCHEDULER_BLOOM_CAPACITY", "10000000")
SCHEDULER_BLOOM_ERROR_RATE = _env("SCHEDULER_BLOOM_ERROR_RATE", "0.001")
# Each worker adds its counters to the job's shared stats hash this often.
SCHEDULER_STATS_SECONDS = _env("SCHEDULER_STATS_SECONDS", "10")

# --- Resilience (downloader middlewares) ------------------------------------
# Requests per second per key (host, or meta["ratelimit_key"]) before a server
# announces its own budget; polite for broker sites.
RATELIMIT_ENABLED = _env("RATELIMIT_ENABLED", "true")
RATELIMIT_DEFAULT_RPS = _env("RATELIMIT_DEFAULT_RPS", "1")
# Per-host rates: JSON {"host": rps} or "host=rps,host=rps".
RATELIMIT_SITES = _env("RATELIMIT_SITES")
RATELIMIT_BURST = _env("RATELIMIT_BURST", "1")
# Pace by X-RateLimit-Limit/Remaining/Reset when a server sends them.
RATELIMIT_ADAPTIVE = _env("RATELIMIT_ADAPTIVE", "true")
# Extra wait after the (estimated) end of a used-up budget window before spending the next one:
# a Reset in whole seconds may be rounded down, so up to a second early.
RATELIMIT_RESET_MARGIN = _env("RATELIMIT_RESET_MARGIN", "1")
# A request reserves its slot at most this far ahead (so a faster budget applies at once).
RATELIMIT_MAX_RESERVE_SECONDS = _env("RATELIMIT_MAX_RESERVE_SECONDS", "1")
# Waits longer than this go back to the scheduler instead of holding a download slot.
RATELIMIT_DEFER_SECONDS = _env("RATELIMIT_DEFER_SECONDS", "5")
# Pause after a soft rate-limit page (status 200) without Retry-After.
RATELIMIT_BLOCK_PAUSE_SECONDS = _env("RATELIMIT_BLOCK_PAUSE_SECONDS", "60")

CIRCUIT_ENABLED = _env("CIRCUIT_ENABLED", "true")
# This many failures (5xx, timeouts, connection errors, blocks) within the window open a domain's circuit.
CIRCUIT_FAILURE_THRESHOLD = _env("CIRCUIT_FAILURE_THRESHOLD", "5")
CIRCUIT_WINDOW_SECONDS = _env("CIRCUIT_WINDOW_SECONDS", "60")
# An open circuit lets one probe through after this long.
CIRCUIT_RESET_SECONDS = _env("CIRCUIT_RESET_SECONDS", "30")
# A closed circuit is remembered in process this long (0 = ask Redis on every request).
CIRCUIT_CLOSED_CACHE_SECONDS = _env("CIRCUIT_CLOSED_CACHE_SECONDS", "0.5")

# Scrapy's retry settings keep their names (RETRY_TIMES, RETRY_HTTP_CODES, ...).
RETRY_TIMES = _env("RETRY_TIMES", "3")
# Backoff before attempt n: uniform in [0, min(MAX, BASE * 2**(n-1))] seconds.
RETRY_BACKOFF_BASE = _env("RETRY_BACKOFF_BASE", "1")
RETRY_BACKOFF_MAX = _env("RETRY_BACKOFF_MAX", "60")

BLOCKS_ENABLED = _env("BLOCKS_ENABLED", "true")
# After a captcha (SLOWDOWN_KINDS, comma-separated block kinds) a key pauses SLOWDOWN_PAUSE_SECONDS (or its
# Retry-After) and its rate is cut to SLOWDOWN_FACTOR times the rate in use, not below SLOWDOWN_MIN_RPS.
SLOWDOWN_ENABLED = _env("SLOWDOWN_ENABLED", "true")
SLOWDOWN_KINDS = _env("SLOWDOWN_KINDS", "captcha")
SLOWDOWN_FACTOR = _env("SLOWDOWN_FACTOR", "0.5")
SLOWDOWN_MIN_RPS = _env("SLOWDOWN_MIN_RPS", "0.1")
SLOWDOWN_PAUSE_SECONDS = _env("SLOWDOWN_PAUSE_SECONDS", "10")

# Bearer tokens: POST AUTH_TOKEN_URL {client_id, client_secret} -> {access_token, expires_in}.
AUTH_TOKEN_URL = _env("AUTH_TOKEN_URL")
AUTH_CLIENT_ID = _env("AUTH_CLIENT_ID")
AUTH_CLIENT_SECRET = _env("AUTH_CLIENT_SECRET")
AUTH_TOKEN_REFRESH_MARGIN = _env("AUTH_TOKEN_REFRESH_MARGIN", "30")
# After this many failed refreshes in a row, waiting requests become dead letters.
AUTH_TOKEN_MAX_FAILURES = _env("AUTH_TOKEN_MAX_FAILURES", "5")
# Static API key, sent in a header (or as a query parameter when API_KEY_QUERY_PARAM is set).
API_KEY = _env("API_KEY")
API_KEY_HEADER = _env("API_KEY_HEADER", "X-API-Key")
API_KEY_QUERY_PARAM = _env("API_KEY_QUERY_PARAM")
# Hosts that receive credentials (comma-separated); empty: the spider's allowed_domains / the token URL's host.
AUTH_DOMAINS = _env("AUTH_DOMAINS")

# --- Security ---------------------------------------------------------------
# "id:base64key,id:base64key" (32-byte keys); the first encrypts, all decrypt.
# Empty: development keys are generated once under DATA_DIR (with a warning).
CRAWLER_ENCRYPTION_KEYS = _env("CRAWLER_ENCRYPTION_KEYS")
# base64 32-byte HMAC key for blind indexes; empty: development key under DATA_DIR.
CRAWLER_BLIND_INDEX_KEY = _env("CRAWLER_BLIND_INDEX_KEY")

# --- AI (OpenAI-compatible server) -----------------------------------------
OPENAI_BASE_URL = _env("OPENAI_BASE_URL")
OPENAI_API_KEY = _env("OPENAI_API_KEY")
OPENAI_MODEL = _env("OPENAI_MODEL", "gpt-4o-mini")

# --- Logging ----------------------------------------------------------------
# "text" (readable lines) or "json" (one JSON object per line). Scrapy's own
# meaning (a %-format string) is accepted too and implies text.
LOG_FORMAT = _env("LOG_FORMAT", "text")
LOG_LEVEL = _env("LOG_LEVEL", "INFO")
LOG_FILE = _env("LOG_FILE") or None
# Replace URL paths and queries in logs by a short hash: broker URLs carry names.
LOG_REDACT_URLS = _env("LOG_REDACT_URLS", "true")
# Our redacting handler replaces Scrapy's root handler (crawler.observability.logs).
LOG_INSTALL_ROOT_HANDLER = False
# Item contents never reach the log (they are personal data).
LOG_FORMATTER = "crawler.observability.logs.PrivacyLogFormatter"

# --- Metrics, health, tracing (crawler/observability/) -------------------------
# /metrics and /health of this worker: empty = off; a port; a range "9410-9419" (first free
# one, for several workers on one machine); 0 = any free port. The port is logged.
METRICS_PORT = _env("METRICS_PORT")
METRICS_HOST = _env("METRICS_HOST", "127.0.0.1")
# Each /health dependency check (Redis, PostgreSQL) gives up after this long.
HEALTH_TIMEOUT_SECONDS = _env("HEALTH_TIMEOUT_SECONDS", "2")
# /health turns 503 after this long without a response or item (0 = never for that reason).
HEALTH_STALL_SECONDS = _env("HEALTH_STALL_SECONDS", "0")
# OpenTelemetry spans request -> item -> database write (needs opentelemetry-sdk installed).
OTEL_ENABLED = _env("OTEL_ENABLED", "false")

# --- Sites --------------------------------------------------------------------
# Where the example spider finds the sandbox directory (`python -m sandbox`).
EXAMPLE_BASE_URL = _env("EXAMPLE_BASE_URL", "http://127.0.0.1:8100")
# Broker site definitions (spiders/sites/*.yaml): base URLs overriding the YAML's, as
# "id=url,id=url" (e.g. the sandbox's ports); result pages followed per search; detail pages per site.
SITES_BASE_URLS = _env("SITES_BASE_URLS")
SITES_MAX_PAGES = _env("SITES_MAX_PAGES", "5")
SITES_MAX_CANDIDATES = _env("SITES_MAX_CANDIDATES", "50")

# The events spider: its API (overridden by -a base_url / -a api_key) and how often it logs progress.
EVENTS_BASE_URL = _env("EVENTS_BASE_URL", "http://127.0.0.1:8200")
EVENTS_API_KEY = _env("EVENTS_API_KEY")
EVENTS_PROGRESS_SECONDS = _env("EVENTS_PROGRESS_SECONDS", "10")

# --- Crawling -----------------------------------------------------------------
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) privacy-crawler/0.1 (+https://example.invalid/bot)"
# Scans act for the data subject on their own data; politeness comes from the
# rate limits, and robots.txt round trips would only slow every new host.
ROBOTSTXT_OBEY = False
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 8
DOWNLOAD_TIMEOUT = 30
# The telnet console and Scrapy 2.19's remote-control server run arbitrary
# code inside a process that holds personal data in memory: off unless asked.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = _env("REMOTE_CONTROL_ENABLED", "false")
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
    "crawler.scheduling.shared.SharedScheduler" if REDIS_URL else "crawler.scheduling.deferring.DeferringScheduler"
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
    "executable_path": _env("CHROMIUM_PATH", "/usr/bin/chromium"),
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
PLAYWRIGHT_MAX_CONTEXTS = int(_env("PLAYWRIGHT_MAX_CONTEXTS", "2"))
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = int(_env("PLAYWRIGHT_MAX_PAGES_PER_CONTEXT", "4"))
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
