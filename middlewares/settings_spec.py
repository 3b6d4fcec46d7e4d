"""Settings of the resilience downloader middlewares: rate limit, circuit breaker, retry,
block detection, slowdown after captchas, authentication."""

from __future__ import annotations

from crawler.notation import parse_mapping
from crawler.setting import Component, Setting


def check_rate_sites(value) -> None:
    try:
        rates = parse_mapping(value, float)
    except ValueError as exc:
        raise ValueError(f"expected JSON {{host: rps}} or host=rps,host=rps ({exc})") from None
    if bad := [host for host, rps in rates.items() if not rps > 0]:
        raise ValueError(f"rates must be positive (host {bad[0]})")


RATE_LIMIT = Component(
    "Rate limit",
    "middlewares/rate_limit.py",
    (
        Setting("RATELIMIT_ENABLED", "bool", "true", 'token bucket per key (the host, or `meta["ratelimit_key"]`)'),
        Setting(
            "RATELIMIT_DEFAULT_RPS",
            "number",
            "1",
            "requests/s per key until the server announces a budget (polite for broker sites)",
            above=0,
        ),
        Setting(
            "RATELIMIT_SITES",
            "str",
            "",
            'per-host rates; a spider\'s `ratelimit_rps` attribute and `meta["ratelimit_rps"]` override',
            check=check_rate_sites,
            accepts='JSON `{"host": rps}` or `host=rps,host=rps`',
        ),
        Setting("RATELIMIT_BURST", "int", "1", "slots a key may use at once", min=1),
        Setting(
            "RATELIMIT_ADAPTIVE",
            "bool",
            "true",
            "pace by `X-RateLimit-Limit/Remaining/Reset` (Reset as seconds or epoch, detected): the remaining "
            "budget is spread over the time left, minus requests already on their way; none left: pause until "
            "the reset",
        ),
        Setting(
            "RATELIMIT_RESET_MARGIN",
            "number",
            "1",
            "seconds added to the estimated end of a used-up window before the next budget is spent (a "
            "whole-second Reset may be rounded down); 0.1 is enough for servers that round up or send fractions",
            min=0,
        ),
        Setting(
            "RATELIMIT_MAX_RESERVE_SECONDS",
            "number",
            "1",
            "a request reserves its slot at most this far ahead (a faster budget applies at once)",
            above=0,
        ),
        Setting(
            "RATELIMIT_BATCH",
            "int",
            "16",
            "with Redis: slots of a key one round trip may reserve for this worker (only slots due within "
            "`RATELIMIT_BATCH_SECONDS`; held slots count as in flight); keys with a server budget or ever paused "
            "are reserved one request at a time; 1: one round trip per request",
            min=1,
        ),
        Setting(
            "RATELIMIT_BATCH_SECONDS",
            "number",
            "0.05",
            "how far ahead a batch reserves (a held slot late by over half an interval is given back)",
            min=0,
        ),
        Setting(
            "RATELIMIT_DEFER_SECONDS",
            "number",
            "5",
            "longer waits go back to the scheduler instead of holding a download slot",
            above=0,
        ),
        Setting(
            "RATELIMIT_BLOCK_PAUSE_SECONDS",
            "number",
            "60",
            "pause of a key after a soft rate-limit page without `Retry-After` (a `Retry-After` on a 403, 429 or "
            "503 pauses the key for that long)",
            min=0,
        ),
    ),
)

CIRCUIT = Component(
    "Circuit breaker",
    "middlewares/circuit_breaker.py",
    (
        Setting("CIRCUIT_ENABLED", "bool", "true", 'circuit breaker per site (`meta["site"]`), else per host'),
        Setting(
            "CIRCUIT_FAILURE_THRESHOLD",
            "int",
            "5",
            "failures (5xx, timeouts, connection errors, captcha/interstitial/blocked pages) within the window "
            "that open it; a spider's `circuit_failure_threshold` overrides",
            min=1,
        ),
        Setting("CIRCUIT_WINDOW_SECONDS", "number", "60", "that window", above=0),
        Setting(
            "CIRCUIT_RESET_SECONDS",
            "number",
            "30",
            "an open circuit lets exactly one probe through (across all workers) after this long; success closes "
            "it, failure reopens it",
            above=0,
        ),
        Setting(
            "CIRCUIT_CLOSED_CACHE_SECONDS",
            "number",
            "0.5",
            "a closed circuit is remembered in process this long, saving a Redis round trip per request; a "
            "circuit another worker opened is seen at most this late (0: ask every time)",
            min=0,
        ),
    ),
)

RETRY = Component(
    "Retry",
    "middlewares/retry.py",
    (
        Setting(
            "RETRY_TIMES",
            "int",
            "3",
            "retries after the first attempt (Scrapy's setting; `meta[\"max_retry_times\"]` and a spider's "
            "`retry_times` override); `RETRY_HTTP_CODES`, `RETRY_EXCEPTIONS` as in Scrapy",
            min=0,
        ),
        Setting(
            "RETRY_BACKOFF_BASE",
            "number",
            "1",
            "backoff before attempt n: uniform in [0, min(max, base·2ⁿ⁻¹)] s, never shorter than `Retry-After`",
            min=0,
        ),
        Setting("RETRY_BACKOFF_MAX", "number", "60", "the longest backoff (seconds)", above=0),
    ),
)

BLOCKS = Component(
    "Block detection",
    "middlewares/blocks.py",
    (
        Setting(
            "BLOCKS_ENABLED",
            "bool",
            "true",
            "classify captcha / interstitial / rate-limit-with-200 / blocked pages (generic signatures plus a "
            "spider's `block_signatures`)",
        ),
    ),
)

SLOWDOWN = Component(
    "Slowdown after blocks",
    "middlewares/slowdown.py",
    (
        Setting(
            "SLOWDOWN_ENABLED",
            "bool",
            "true",
            "after a block of `SLOWDOWN_KINDS` (e.g. TruePeopleSearch's burst redirect to `/InternalCaptcha`) "
            "the key pauses, then runs slower (per worker)",
        ),
        Setting(
            "SLOWDOWN_KINDS",
            "str",
            "captcha",
            "block kinds that slow a key down",
            accepts="comma-separated kinds",
        ),
        Setting(
            "SLOWDOWN_PAUSE_SECONDS",
            "number",
            "10",
            "pause after such a block (or its `Retry-After`, if longer); blocks of requests already on their way "
            "count as the same incident",
            min=0,
        ),
        Setting(
            "SLOWDOWN_FACTOR",
            "fraction",
            "0.5",
            'each incident multiplies the key\'s rate by this (handed to the rate limiter as `meta["ratelimit_rps"]`)',
        ),
        Setting("SLOWDOWN_MIN_RPS", "number", "0.1", "...but not below this rate", above=0),
    ),
)

AUTH = Component(
    "Authentication",
    "middlewares/auth_token.py",
    (
        Setting(
            "AUTH_TOKEN_URL",
            "url",
            "",
            "`POST` here with `{client_id, client_secret}` for `{access_token, expires_in}`; refreshed ahead of "
            "expiry and on a 401 (one refresh in flight), the request replayed",
        ),
        Setting("AUTH_CLIENT_ID", "str", "", "the client id sent to it"),
        Setting("AUTH_CLIENT_SECRET", "str", "", "the client secret sent to it", secret=True),
        Setting(
            "AUTH_TOKEN_REFRESH_MARGIN",
            "number",
            "30",
            "refresh this long before expiry (at most a fifth of the token's lifetime)",
            above=0,
        ),
        Setting(
            "AUTH_TOKEN_MAX_FAILURES",
            "int",
            "5",
            "while the token endpoint fails, requests wait with backoff (2, 4, 8... s); after this many failed "
            "refreshes in a row they become dead letters (`auth_token_unavailable`)",
            min=1,
        ),
        Setting(
            "API_KEY",
            "str",
            "",
            "static key (a spider's `api_key` overrides), sent in `API_KEY_HEADER` or as the query parameter "
            "`API_KEY_QUERY_PARAM`",
            secret=True,
        ),
        Setting("API_KEY_HEADER", "str", "X-API-Key", "the header that carries it"),
        Setting("API_KEY_QUERY_PARAM", "str", "", "send it as this query parameter instead (empty: the header)"),
        Setting(
            "AUTH_DOMAINS",
            "str",
            "",
            "hosts that receive credentials; empty: the spider's `allowed_domains`, else the token URL's host",
            accepts="comma-separated hosts",
        ),
    ),
)

COMPONENTS = (RATE_LIMIT, CIRCUIT, RETRY, BLOCKS, SLOWDOWN, AUTH)
