"""One tenant of the lab: its configuration, budgets, tokens and counters.

A tenant is the ``<tenant>`` of ``/t/<tenant>/...``: tests pick their own (a
uuid) so that many share one sandbox process without seeing each other's state.
Recording is O(1) a request and every list is capped at ``CAP`` entries (later
entries are counted, not kept), so a benchmark can run for as long as it likes.
"""

from __future__ import annotations

import math
import secrets
from collections import Counter

from sandbox.events.clock import Clock
from sandbox.events.ratelimit import Decision, FixedWindow

CAP = 100_000  # entries kept in each recorded list (arrivals, 429 times, windows, token issues)
PATHS_CAP = 100_000  # distinct paths remembered for the first_n modes
FAIL_MODES = ("off", "always", "every_nth", "first_n")
BLOCK_KINDS = ("captcha", "interstitial", "soft-limit", "forbidden")

DEFAULTS: dict = {
    "rate_limit": 0,  # requests per window and API key; 0 = no rate limiting
    "rate_window": 1.0,
    "reset_style": "seconds",
    "fail_status": 503,  # or "drop": close the connection instead
    "fail_mode": "off",
    "fail_n": 1,
    "retry_after": None,  # Retry-After (seconds) on injected failures
    "down": False,
    "down_until": 0.0,  # epoch seconds
    "truncate_json": 0.0,  # fraction of /json answers cut in half (spread evenly)
    "truncate_json_first_n": 0,  # the first n /json answers of each path cut in half
    "delay": 0.0,
    "drop": False,
    "client_id": "lab-client",
    "client_secret": "lab-secret",
    "token_ttl": 3600,
    "block_after": 0,  # page requests a block window allows before the soft-limit page; 0 = never
    "block_window": 60.0,
}


def _number(low: float, high: float = math.inf, integer: bool = False, none: bool = False, above: bool = False):
    def check(value):
        if value is None and none:
            return
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise ValueError(f"expected {'a whole number' if integer else 'a number'}{' or null' if none else ''}")
        if value < low or value > high or (above and value == low):
            bound = f" and <= {high:g}" if high < math.inf else ""
            raise ValueError(f"expected {'>' if above else '>='} {low:g}{bound}")

    return check


def _choice(*options):
    def check(value):
        if value not in options:
            raise ValueError(f"expected one of {', '.join(map(str, options))}")

    return check


def _instance(kind: type, label: str):
    def check(value):
        if not isinstance(value, kind):
            raise ValueError(f"expected {label}")

    return check


def _status(value):
    if value != "drop" and (isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599):
        raise ValueError('expected an HTTP status 400-599 or "drop"')


CHECKS = {
    "rate_limit": _number(0, integer=True),
    "rate_window": _number(0, above=True),
    "reset_style": _choice("seconds", "epoch"),
    "fail_status": _status,
    "fail_mode": _choice(*FAIL_MODES),
    "fail_n": _number(1, integer=True),
    "retry_after": _number(0, none=True),
    "down": _instance(bool, "true or false"),
    "down_until": _number(0),
    "truncate_json": _number(0, 1),
    "truncate_json_first_n": _number(0, integer=True),
    "delay": _number(0, 60),
    "drop": _instance(bool, "true or false"),
    "client_id": _instance(str, "a string"),
    "client_secret": _instance(str, "a string"),
    "token_ttl": _number(0, above=True),
    "block_after": _number(0, integer=True),
    "block_window": _number(0, above=True),
}
assert CHECKS.keys() == DEFAULTS.keys()


def merged(base: dict, changes) -> dict:
    """``base`` with ``changes`` applied; ValueError("name: reason") on an unknown name or a bad value."""
    if not isinstance(changes, dict):
        raise ValueError("body: expected a JSON object")
    for name, value in changes.items():
        if name not in CHECKS:
            raise ValueError(f"{name}: unknown setting (known: {', '.join(CHECKS)})")
        try:
            CHECKS[name](value)
        except ValueError as exc:
            raise ValueError(f"{name}: {exc}, got {value!r}"[:300]) from None
    return {**base, **changes}


def capped_append(items: list, value) -> None:
    if len(items) < CAP:
        items.append(value)


class Tenant:
    def __init__(self, name: str):
        self.name = name
        self.config = dict(DEFAULTS)
        self.clock = Clock()  # the tenant's time: POST /t/<t>/clock freezes or advances it
        self.reset()

    def reset(self) -> None:
        """Back to an unused tenant: counters, windows, tokens and failure sequences (not the config)."""
        self.statuses: Counter[int] = Counter()
        self.counters: Counter[str] = Counter()  # pages, json, protected, failures, dropped, truncated, blocks...
        self.unauthorized: Counter[str] = Counter({"missing": 0, "unknown": 0, "expired": 0})
        self.requests = 0
        self.arrivals: list = []  # [epoch, path, served while down]
        self.first_response = self.last_response = None
        self.rate_limited_at: list[float] = []
        self.windows: list[list] = []  # [started epoch, API key, allowed, refused]
        self.tokens: dict[str, float] = {}  # token -> expiry (epoch)
        self.token_issued_at: list[float] = []
        self.path_failures: dict[str, int] = {}
        self.path_truncations: dict[str, int] = {}
        self.nth = self.json_seen = 0
        self.rebuild()

    def rebuild(self) -> None:
        self.pools: dict[str, FixedWindow] = {}
        self.current_window: dict[str, list] = {}
        self.block_pool = self.window(self.config["block_after"], self.config["block_window"])

    def window(self, limit: int, seconds: float, reset_style: str = "seconds") -> FixedWindow:
        return FixedWindow(limit, seconds, reset_style, clock=self.clock.monotonic, wall=self.clock.time)

    def configure(self, changes: dict) -> dict:
        old, self.config = self.config, merged(self.config, changes)
        keys = ("rate_limit", "rate_window", "reset_style", "block_after", "block_window")
        if any(old[k] != self.config[k] for k in keys):
            self.rebuild()
        return self.config

    # ---- per-request recording -------------------------------------------------------------------

    def is_down(self, now: float) -> bool:
        config = self.config
        return config["down"] or config["fail_mode"] == "always" or config["down_until"] > now

    def arrive(self, now: float, path: str, down: bool) -> None:
        self.requests += 1
        self.counters["down_requests"] += down
        if len(self.arrivals) < CAP:
            self.arrivals.append((now, path, down))

    def answered(self, status: int) -> None:
        now = self.clock.time()
        if self.first_response is None:
            self.first_response = now
        self.last_response = now
        self.statuses[status] += 1
        if status == 429:
            capped_append(self.rate_limited_at, now)

    # ---- rate limiting ---------------------------------------------------------------------------

    def pool(self, key: str) -> FixedWindow:
        pool = self.pools.get(key)
        if pool is None:
            config = self.config
            pool = self.pools[key] = self.window(config["rate_limit"], config["rate_window"], config["reset_style"])
        return pool

    def take(self, key: str) -> Decision:
        """Count a request against ``key``'s budget, noting each window's allowed and refused requests."""
        pool = self.pool(key)
        ends = pool.ends
        decision = pool.take()
        if pool.ends != ends or key not in self.current_window:
            record = self.current_window[key] = [self.clock.time(), key, 0, 0]
            capped_append(self.windows, record)
        self.current_window[key][2 if decision.allowed else 3] += 1
        return decision

    # ---- failure sequences -----------------------------------------------------------------------

    def injected_failure(self, path: str) -> bool:
        """Whether ``every_nth`` or ``first_n`` fails this request (``always`` and down are answered earlier)."""
        config = self.config
        mode = config["fail_mode"]
        if mode == "every_nth":
            self.nth += 1
            return self.nth % config["fail_n"] == 0
        if mode == "first_n":
            return _first_n(self.path_failures, path, config["fail_n"])
        return False

    def truncates_json(self, path: str) -> bool:
        config = self.config
        if config["truncate_json_first_n"] and _first_n(self.path_truncations, path, config["truncate_json_first_n"]):
            return True
        fraction = config["truncate_json"]
        if fraction <= 0:
            return False
        self.json_seen += 1  # truncate when the running count of fraction * answers reaches a new whole number
        return math.floor(self.json_seen * fraction) > math.floor((self.json_seen - 1) * fraction)

    # ---- bearer tokens ---------------------------------------------------------------------------

    def issue_token(self) -> str:
        now = self.clock.time()
        token = secrets.token_urlsafe(24)
        if len(self.tokens) >= CAP:  # forget the oldest (a request with it then counts as "unknown")
            del self.tokens[next(iter(self.tokens))]
        self.tokens[token] = now + self.config["token_ttl"]
        self.counters["tokens_issued"] += 1
        capped_append(self.token_issued_at, now)
        return token

    def token_problem(self, authorization: str | None) -> str | None:
        """None for a valid unexpired bearer token of this tenant, else missing, unknown or expired."""
        if not authorization or authorization[:7].lower() != "bearer " or not authorization[7:].strip():
            return "missing"
        expires = self.tokens.get(authorization[7:].strip())
        if expires is None:
            return "unknown"
        return "expired" if self.clock.time() >= expires else None

    # ---- stats -----------------------------------------------------------------------------------

    def stats(self, lists: bool = True) -> dict:
        counters = self.counters
        result = {
            "tenant": self.name,
            "requests": self.requests,
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "first_response_at": self.first_response,
            "last_response_at": self.last_response,
            "rate_limited": self.statuses[429],
            "failures": counters["failures"],
            "dropped": counters["dropped"],
            "down_requests": counters["down_requests"],
            "truncated": counters["truncated"],
            "pages_served": counters["pages"],
            "json_served": counters["json"],
            "protected_served": counters["protected"],
            "tokens_issued": counters["tokens_issued"],
            "invalid_client": counters["invalid_client"],
            "unauthorized": dict(self.unauthorized),
            "blocks": {kind: counters[f"block:{kind}"] for kind in BLOCK_KINDS},
            "soft_limited": counters["soft_limited"],
            "config": self.config,
        }
        if lists:
            result.update(
                {
                    "rate_limited_at": self.rate_limited_at,
                    "windows": [
                        {"started_at": w[0], "key": w[1], "allowed": w[2], "refused": w[3]} for w in self.windows
                    ],
                    "token_issued_at": self.token_issued_at,
                    "arrivals": self.arrivals,
                }
            )
        return result


def _first_n(seen: dict[str, int], path: str, n: int) -> bool:
    """True for the first ``n`` calls with ``path`` (paths past PATHS_CAP distinct ones are never failed)."""
    count = seen.get(path)
    if count is None:
        if len(seen) >= PATHS_CAP:
            return False
        count = 0
    if count >= n:
        return False
    seen[path] = count + 1
    return True
