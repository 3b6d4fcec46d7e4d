"""Helpers shared by the ``spa`` and ``radaris`` broker sites.

* Which people a site lists: real brokers each hold a different, incomplete copy
  of the public record, so each site lists a deterministic 70-85% of the
  population, chosen by hashing the site's name with the person. The same
  person is listed (or not) on every run and for every seed, which makes
  ``listing_url`` a stable ground truth without access to the running app.
* Opaque ids: profile URLs carry ids derived the same way (never the
  population's own ``P000123`` ids, which would let a crawler guess them).
* A per-client requests-per-minute counter (a sliding one-minute log, keyed by
  the client's address, as the CDN in front of a broker keys it). Refused
  requests do not count, so a client that waits ``Retry-After`` gets in.
* ``POST /_sandbox/config {"layout": "v1"|"v2", "rate_limit_per_minute": N}``
  switches the HTML layout (sites are redesigned under running crawlers) and the
  limit at run time; every config change starts the clients' counts afresh.
  ``GET /_sandbox/stats`` reports the config, counts and statuses served.
  ``/_sandbox/*`` and ``/health`` are never counted nor limited.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from sandbox.population import Person, Population

LAYOUTS = ("v1", "v2")
ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _digest(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:16], "big")


def _person_key(person: Person) -> str:
    """The person's identity across seeds: the id alone repeats for every seed."""
    return f"{person.id}:{person.first_name}:{person.last_name}:{person.birth_year}:{person.birth_month}"


def listed_fraction(site_id: str) -> float:
    """The share of the population this site lists, between 0.70 and 0.85, fixed by its name."""
    return 0.70 + 0.15 * (_digest("fraction", site_id) % 1000) / 999


def is_listed(site_id: str, person: Person) -> bool:
    return _digest("listed", site_id, _person_key(person)) % 10_000 < listed_fraction(site_id) * 10_000


def listed_people(site_id: str, population: Population) -> list[Person]:
    return [p for p in population.people if is_listed(site_id, p)]


def opaque_id(site_id: str, person: Person, length: int = 11, alphabet: str = ALPHANUMERIC) -> str:
    value, chars = _digest("id", site_id, _person_key(person)), []
    for _ in range(length):
        value, index = divmod(value, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def stable_order(site_id: str, key: str, people: list[Person]) -> list[Person]:
    """A deterministic shuffle (for picks such as associates) that needs no random state."""
    return sorted(people, key=lambda p: _digest("order", site_id, key, p.id))


class RateCounter:
    """At most ``limit`` requests per client in any 60 s (0 = unlimited)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self.log: dict[str, deque[float]] = {}

    def hit(self, client: str) -> int | None:
        """Count one request; None when allowed, else the seconds to wait (the Retry-After)."""
        if self.limit <= 0:
            return None
        now = self.clock()
        times = self.log.setdefault(client, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            return max(1, math.ceil(times[0] + self.window - now))
        times.append(now)
        return None

    def counts(self) -> dict[str, int]:
        now = self.clock()
        counts = {c: sum(t > now - self.window for t in times) for c, times in self.log.items()}
        return {c: n for c, n in counts.items() if n}


@dataclass
class SiteState:
    """A site's run-time config and counters, kept on its app under ``STATE_KEY``."""

    site_id: str
    default_limit: int
    layout: str = "v1"
    counter: RateCounter = field(init=False)
    stats: Counter = field(default_factory=Counter)
    listed: int = 0
    population: int = 0

    def __post_init__(self) -> None:
        self.counter = RateCounter(self.default_limit)

    def snapshot(self) -> dict:
        return {
            "site": self.site_id, "layout": self.layout, "rate_limit_per_minute": self.counter.limit,
            "listed": self.listed, "population": self.population,
            "requests": self.stats["requests"], "rate_limited": self.stats["rate_limited"],
            "statuses": {k[7:]: v for k, v in sorted(self.stats.items()) if k.startswith("status_")},
            "clients": self.counter.counts(),
        }  # fmt: skip


STATE_KEY = web.AppKey("broker_state", SiteState)


def guard(
    state: SiteState,
    refuse: Callable[[int], web.StreamResponse],
    counted: Callable[[web.Request], bool] = lambda _request: True,
):
    """Middleware: count and rate-limit the site's requests; ``refuse(retry_after)`` answers the excess."""

    @web.middleware
    async def middleware(request: web.Request, handler):
        if request.path.startswith("/_sandbox/") or request.path == "/health" or not counted(request):
            return await handler(request)
        state.stats["requests"] += 1
        wait = state.counter.hit(request.remote or "?")
        if wait is not None:
            state.stats["rate_limited"] += 1
            response = refuse(wait)
            response.headers["Retry-After"] = str(wait)
            state.stats[f"status_{response.status}"] += 1
            return response
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            state.stats[f"status_{exc.status}"] += 1
            raise
        state.stats[f"status_{response.status}"] += 1
        return response

    return middleware


async def _config(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "body must be JSON"}, status=400)
    layout, limit = body.get("layout", state.layout), body.get("rate_limit_per_minute", state.counter.limit)
    if layout not in LAYOUTS or not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        return web.json_response({"error": f"layout must be one of {LAYOUTS}, rate_limit_per_minute >= 0"}, status=400)
    state.layout, state.counter = layout, RateCounter(limit)
    return web.json_response(state.snapshot())


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATE_KEY].snapshot())


def setup_site(
    app: web.Application,
    site_id: str,
    population: Population,
    default_limit: int,
    refuse: Callable[[int], web.StreamResponse],
    counted: Callable[[web.Request], bool] = lambda _request: True,
) -> SiteState:
    """Attach the state, the limiting middleware and the ``/_sandbox`` routes; returns the state."""
    state = SiteState(site_id, default_limit, population=len(population.people))
    state.listed = sum(is_listed(site_id, p) for p in population.people)
    app[STATE_KEY] = state
    app.middlewares.append(guard(state, refuse, counted))
    app.router.add_post("/_sandbox/config", _config)
    app.router.add_get("/_sandbox/stats", _stats)
    return state
