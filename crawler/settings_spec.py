"""Settings of the crawler's core services: the shared Redis client, scan rows, the browser."""

from __future__ import annotations

from urllib.parse import urlsplit

from crawler.setting import Component, Setting, redact_url


def check_redis_url(value) -> None:
    if not value:
        return  # in-process state
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"scheme must be redis://, rediss:// or unix://, got {parts.scheme or 'none'!r}")
    try:
        parts.port  # noqa: B018 - reading it validates the port
    except ValueError as exc:
        raise ValueError(f"malformed URL {redact_url(value)!r} ({exc})") from None
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"no host in {redact_url(value)!r}")
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ValueError(f"database must be a number, got {database!r}")


REDIS = Component(
    "Redis",
    "crawler/shared_redis.py",
    (
        Setting(
            "REDIS_URL",
            "str",
            "",
            "Redis URL. Empty: one process, Scrapy's own scheduler, in-process state. When set, it must answer "
            "at start, and every worker sharing it shares rate limits, circuits and the scheduler's queue.",
            check=check_redis_url,
            accepts="`redis://`, `rediss://`, `unix://` URL or empty",
        ),
        Setting("REDIS_KEY_PREFIX", "str", "crawler:", "prefix of every Redis key the project writes"),
        Setting(
            "REDIS_CONNECT_TIMEOUT",
            "number",
            "5",
            "seconds a Redis connection or command may take before it fails (at start, and for every call: "
            "a hung Redis degrades the components that share state instead of stalling the crawl)",
            above=0,
        ),
    ),
)

SCANS = Component(
    "Scans",
    "crawler/scans.py",
    (
        Setting(
            "SCANS_UPDATE_SECONDS",
            "number",
            "2",
            "per-site counters are written to the running scan row at most this often (0 = only at the end)",
            min=0,
        ),
    ),
)

BROWSER = Component(
    "Browser (scrapy-playwright)",
    "crawler/browser.py",
    (
        Setting(
            "CHROMIUM_PATH",
            "str",
            "/usr/bin/chromium",
            'the Chromium that renders `meta["playwright"]` pages (site definitions with `render: browser`, '
            "evidence screenshots); it starts on first use. Environment only: it is copied into "
            "`PLAYWRIGHT_LAUNCH_OPTIONS` when the settings load",
            accepts="path",
        ),
        Setting("PLAYWRIGHT_MAX_CONTEXTS", "int", "2", "browser contexts open at once", min=1),
        Setting("PLAYWRIGHT_MAX_PAGES_PER_CONTEXT", "int", "4", "pages open at once per context", min=1),
        Setting(
            "PLAYWRIGHT_CONTEXT_MAX_PAGES",
            "int",
            "100",
            "a browser context is replaced by a fresh one after this many pages (closed once its open pages are): "
            "Playwright and Chromium keep a context's requests and cache until it closes (0 = never)",
            min=0,
        ),
        Setting(
            "PLAYWRIGHT_CONTEXT_KEEP_STORAGE",
            "bool",
            "true",
            "a replaced context hands its cookies and localStorage to its successor (accepted terms, sessions)",
        ),
        Setting(
            "PLAYWRIGHT_ABORT_RESOURCE_TYPES",
            "str",
            "image,media,font",
            "resource types the browser does not fetch (comma-separated Playwright resource types; empty = all); "
            'never for pages that take a screenshot, nor for requests with meta["playwright_abort_resources"] = False',
        ),
        Setting(
            "PLAYWRIGHT_PROCESS_GUARD",
            "bool",
            "true",
            "start Chromium through crawler/chromium_launcher.py, which kills it with its process group and "
            "removes its profile when the crawl or the Playwright driver exits, even by SIGKILL",
        ),
        Setting(
            "PLAYWRIGHT_SHARED_BROWSER_URL",
            "str",
            "",
            "set by the worker (`WORKER_SHARED_BROWSER`): the endpoint of its Playwright browser server, which this "
            "crawl connects to with contexts of its own instead of launching a browser; empty: launch one",
        ),
        Setting(
            "REMOTE_CONTROL_ENABLED",
            "bool",
            "false",
            "Scrapy 2.19's remote-control server; it runs arbitrary code in a process that holds personal data "
            "in memory, so it is off unless asked (the telnet console is always off)",
        ),
    ),
)

COMPONENTS = (REDIS, SCANS, BROWSER)
