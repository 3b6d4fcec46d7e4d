"""A broker site at run time: its config, counters and rate windows, and the ``/_sandbox`` control endpoints.

- Rate windows: sliding, per client IP (``RateCounter``), as the CDN in front of a broker keys them.
  Refused requests are not counted, so a client that waits the advertised time (``Retry-After``) gets
  in. Every ``POST /_sandbox/config`` starts the windows afresh: sites are reconfigured (redesigned,
  limits changed) under running crawlers, and a new limit should not inherit the old one's requests.
- Counting: every request a site counts (all but ``/_sandbox/*`` and ``/health``, and what its
  ``counted`` leaves out, such as the spa site's pages and script) and the status of every answer to
  it, the site's own refusals included. A site's defences are its ``gate``, put in front of its pages.
- Control, on every broker app (never counted, rate limited or challenged)::

      POST /_sandbox/config  {"layout": "v1"|"v2"|"structural"|"jsonld"|"partial",
                              "rate_limit_per_minute": N, <site keys>,
                              "redesign_layout": L, "redesign_after_requests": N (switch to L past N requests),
                              "defaults": true (start from the defaults),
                              "reset": true (clear counters and the opt-out state)}
      GET  /_sandbox/config  the config
      GET  /_sandbox/stats   counters, requests per client IP, listed count, config

  Sites made with ``flat=True`` (spa, radaris) answer the stats and the POST with the flat snapshot
  their clients read: site, layout, rate_limit_per_minute, listed, population, requests, rate_limited,
  statuses, clients (each client's requests in the current minute).
- Opt-outs (``optouts.py``): every site's ``optouts``; a removed listing is no longer ``listed``, and
  ``search`` / ``visible`` leave it out. Its config keys: ``optout_processing_seconds`` on every site,
  ``optout_link_seconds``, ``relist_share`` (0..1) and ``relist_seconds`` where a site has them (the
  delays may be 0: at once). ``GET /__optouts`` is exempt from counting and limits, as ``/_sandbox/*`` is.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable

from aiohttp import web

from sandbox.brokers.common import Listing
from sandbox.brokers.optouts import OptOuts
from sandbox.population import Person

# v1 the original; v2 a redesign; structural (cards to a table, sections to a definition list, labels
# reordered), jsonld (the data in JSON-LD only, minimal markup, other labels) and partial (some classes
# kept, some renamed): the redesigns self-healing extraction is measured on. Every layout carries the same data.
LAYOUTS = ("v1", "v2", "structural", "jsonld", "partial")
OPT_OUT_BOUNDS = {"optout_processing_seconds": (0, math.inf), "relist_seconds": (0, math.inf), "relist_share": (0, 1)}

Gate = Callable[[web.Request, "Site"], Awaitable[web.StreamResponse | None]]
Refuse = Callable[[web.Request, "Site", int], web.StreamResponse]  # the answer past a limit, given the wait


class RateCounter:
    """At most ``limit`` requests per client in any ``window`` seconds (0 = unlimited)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self.log: dict[str, deque[float]] = defaultdict(deque)

    def hit(self, client: str) -> int | None:
        """Count one request; None when allowed, else the seconds to wait (the Retry-After)."""
        if self.limit <= 0:
            return None
        times, now = self.log[client], self.clock()
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) < self.limit:
            times.append(now)
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    def counts(self) -> dict[str, int]:
        """Each client's requests still in the window."""
        now = self.clock()
        counts = {c: sum(t > now - self.window for t in times) for c, times in self.log.items()}
        return {c: n for c, n in counts.items() if n}


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


class Site(Listing):
    """One broker's listing with its config, counters and rate windows."""

    def __init__(
        self,
        site_id: str,
        options: dict,
        share: float,
        defaults: dict,
        gate: Gate | None = None,
        counted: Callable[[web.Request], bool] | None = None,
        flat: bool = False,
        bounds: dict[str, tuple[float, float]] | None = None,
    ):
        super().__init__(site_id, options, share)
        self.gate, self.counted, self.flat = gate, counted, flat
        # a redesign mid-crawl: past ``redesign_after_requests`` counted requests the site switches to
        # ``redesign_layout`` by itself (0 / "": off), so a test can change the layout under a running crawl
        self.defaults = {"layout": "v1", "redesign_layout": "", "redesign_after_requests": 0, **defaults}
        # key -> (lowest, highest) for numbers that may be 0: a share, or "at once" for a delay
        self.bounds = {**OPT_OUT_BOUNDS, **(bounds or {})}
        self.config = dict(self.defaults)
        self.optouts = OptOuts(site_id, lambda: self.config)
        self.counters: Counter = Counter()
        self.clients: Counter = Counter()
        self.limits: dict[str, RateCounter] = {}

    @property
    def v2(self) -> bool:
        return self.config["layout"] == "v2"

    @property
    def layout(self) -> str:
        return self.config["layout"]

    def listed(self, person: Person | None) -> bool:
        return super().listed(person) and not self.optouts.hidden(person)

    def visible(self, people: list[Person]) -> list[Person]:
        """The people whose listings have not been removed (an opt-out)."""
        hidden = self.optouts.hidden_ids()
        return [p for p in people if p.id not in hidden] if hidden else list(people)

    def search(self, first: str, last: str, city=None, state=None, zip_code=None) -> list[Person]:
        return self.visible(super().search(first, last, city=city, state=state, zip_code=zip_code))

    def admit(self, window: str, request: web.Request, limit: int, seconds: float) -> int | None:
        """Count the request in the client's ``window`` if it has room (None); otherwise the seconds to wait."""
        counter = self.limits.get(window)
        if counter is None or (counter.limit, counter.window) != (limit, seconds):
            counter = self.limits[window] = RateCounter(limit, seconds)
        return counter.hit(client_ip(request))

    def configure(self, changes: dict) -> dict:
        """Validate everything first, then apply; raises ValueError naming the bad setting."""
        defaults, reset = changes.pop("defaults", False) is True, changes.pop("reset", False) is True
        for key, value in changes.items():
            if key not in self.defaults:
                raise ValueError(f"{key}: unknown setting; known: {', '.join(self.defaults)}")
            default = self.defaults[key]
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if key == "layout":
                ok = value in LAYOUTS
            elif key == "redesign_layout":
                ok = value == "" or value in LAYOUTS
            elif key in self.bounds:
                ok = number and self.bounds[key][0] <= value <= self.bounds[key][1]
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else:
                ok = number and value > 0
            if not ok:
                raise ValueError(f"{key}: invalid value {value!r} (default {default!r})")
        if defaults:
            self.config = dict(self.defaults)
        if reset:
            self.counters.clear()
            self.clients.clear()
            self.optouts.clear()
        self.limits.clear()
        self.config.update(changes)
        return self.config

    def snapshot(self) -> dict:
        """What ``GET /_sandbox/stats`` answers, in the site's shape (see ``flat`` above)."""
        if not self.flat:
            return {
                "site": self.id,
                "listed": len(self.people),
                "people": len(self.population.people),
                "counters": dict(self.counters),
                "clients": dict(self.clients),
                "config": self.config,
            }
        minute = self.limits.get("minute")
        return {
            "site": self.id,
            "layout": self.config["layout"],
            "rate_limit_per_minute": self.config["rate_limit_per_minute"],
            "listed": len(self.people),
            "population": len(self.population.people),
            "requests": self.counters["requests"],
            "rate_limited": self.counters["rate_limited"],
            "statuses": {k[7:]: v for k, v in sorted(self.counters.items()) if k.startswith("status_")},
            "clients": minute.counts() if minute else {},
        }


SITE = web.AppKey("broker_site", Site)


def minute_limit(refuse: Refuse, counter: str = "rate_limited") -> Gate:
    """A gate for ``rate_limit_per_minute``: past it, counted under ``counter``, ``refuse`` answers."""

    async def gate(request: web.Request, site: Site) -> web.StreamResponse | None:
        wait = site.admit("minute", request, site.config["rate_limit_per_minute"], 60)
        if wait is None:
            return None
        site.counters[counter] += 1
        return refuse(request, site, wait)

    return gate


@web.middleware
async def protect(request: web.Request, handler) -> web.StreamResponse:
    """Count every request and put the site's defences (its gate) in front of its pages."""
    site = request.app[SITE]
    if request.path.startswith("/_sandbox/") or request.path in ("/health", "/__optouts"):
        return await handler(request)
    if site.counted and not site.counted(request):
        return await handler(request)
    site.counters["requests"] += 1
    site.clients[client_ip(request)] += 1
    after, redesign = site.config["redesign_after_requests"], site.config["redesign_layout"]
    if after and redesign and site.counters["requests"] > after:
        site.config["layout"] = redesign
    try:
        response = await site.gate(request, site) if site.gate else None
        if response is None:
            response = await handler(request)
    except web.HTTPException as exc:
        site.counters[f"status_{exc.status}"] += 1
        raise
    site.counters[f"status_{response.status}"] += 1
    return response


async def configure(request: web.Request) -> web.Response:
    site = request.app[SITE]
    if request.method == "GET":
        return web.json_response(site.config)
    try:
        changes = await request.json() if request.can_read_body else {}
    except ValueError:
        changes = None
    if not isinstance(changes, dict):
        return web.json_response({"error": "expected a JSON object"}, status=400)
    try:
        config = site.configure(changes)
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response(site.snapshot() if site.flat else config)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[SITE].snapshot())


def make_site_app(
    site_id: str,
    options: dict,
    share: float,
    defaults: dict,
    gate: Gate | None = None,
    *,
    counted: Callable[[web.Request], bool] | None = None,
    flat: bool = False,
    bounds: dict[str, tuple[float, float]] | None = None,
) -> tuple[web.Application, Site]:
    """The application with the control endpoints and the counting middleware; the caller adds its routes
    (and ``optouts.install`` for ``/__optouts``)."""
    site = Site(site_id, options, share, defaults, gate, counted, flat, bounds)
    app = web.Application(middlewares=[protect])
    app[SITE] = site
    app.router.add_get("/_sandbox/config", configure)
    app.router.add_post("/_sandbox/config", configure)
    app.router.add_get("/_sandbox/stats", stats)
    return app, site
