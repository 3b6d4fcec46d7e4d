"""Settings of the scans API and its page (crawler/api/)."""

from __future__ import annotations

from crawler.setting import Component, Setting

API = Component(
    "Scans API and page",
    "crawler/api/app.py",
    (
        Setting("API_HOST", "str", "127.0.0.1", "address `python -m crawler.api` listens on"),
        Setting(
            "API_OPERATORS",
            "str",
            "",
            "API key user names (comma-separated) that may review healed site definitions (`/api/heals`, the page's "
            "Heals view); other keys get 403; empty: nobody (use `python -m crawler.healing`)",
        ),
        Setting("API_PORT", "int", "8000", "its port", min=1, max=65535),
        Setting(
            "API_RATE_LIMIT_PER_MINUTE",
            "int",
            "600",
            "requests per minute per API key (a token bucket in Redis with `REDIS_URL`, in process without); "
            "over it: 429 with `Retry-After`",
            min=1,
        ),
        Setting("API_RATE_LIMIT_BURST", "int", "60", "requests a key may send at once before the pace applies", min=1),
        Setting("API_MAX_BODY_BYTES", "int", "65536", "larger request bodies are refused with 413", min=1024),
        Setting(
            "API_STATS_CACHE_SECONDS",
            "number",
            "5",
            "`GET /api/stats` answers are kept this long per user (0: never); finished scans' counts are stored",
            min=0,
        ),
        Setting(
            "API_EVENTS_POLL_SECONDS",
            "number",
            "1.5",
            "`GET /api/scans/{id}/events` reads the scan row this often (with Redis too: some endings publish nothing)",
            min=0.1,
            max=60,
        ),
        Setting(
            "API_EVENTS_KEEPALIVE_SECONDS",
            "number",
            "15",
            "an idle event stream sends a comment line this often, so proxies keep it open",
            min=1,
        ),
    ),
)

COMPONENTS = (API,)
