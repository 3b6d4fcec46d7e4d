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

# --- Sites --------------------------------------------------------------------
# Where the example spider finds the sandbox directory (`python -m sandbox`).
EXAMPLE_BASE_URL = _env("EXAMPLE_BASE_URL", "http://127.0.0.1:8100")

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
    # closes the database pools after everything else has written
    "crawler.db.pool.PoolCloser": 1000,
}

ITEM_PIPELINES = {
    # normalise (E.164 phones, e-mails, addresses, UTC timestamps); invalid -> dead letters
    "pipelines.validate.ValidatePipeline": 100,
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
