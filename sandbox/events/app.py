"""The events API service: request handling, faults, counters, registration.

    GET  /events?limit=N[&cursor=C][&since=T][&until=T][&type=X]  key in X-API-Key (or ?api_key=, own budget)
    GET  /events/stats    counters and the configuration (no key; for tests and benches)
    POST /events/config   change tunables at run time; resets counters, rate windows, the fault sequence and the clock
    POST /events/clock    {"freeze": true|false, "advance": S, "real": true}: the server's time, for tests (clock.py)

Order of checks, as a real gateway does it: key (401, free), budget (429, free),
then everything else counts against the budget: bad parameters (400), bad or
expired cursors (400 or 410), injected server errors (5xx) and pages. Each
counted request draws the same number of values from one seeded generator, so
a given seed and request sequence always injects the same faults. A fault never
loses data: a 5xx or a truncated page returns no cursor the client could keep,
so it retries the same request; a page with duplicates starts a few events back
and still moves forward.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from bisect import bisect_left
from collections import Counter

import orjson
from aiohttp import web

from sandbox.events import config as settings
from sandbox.events.clock import Clock
from sandbox.events.cursors import CursorError, decode, encode
from sandbox.events.generate import DEFAULT_COUNT, TYPES, EventSet, cached
from sandbox.events.ratelimit import Decision, FixedWindow
from sandbox.population import DEFAULT_SEED
from sandbox.server import Service, register

DEFAULT_LIMIT = 100
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
HTML_ERRORS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


class BadParameter(Exception):
    def __init__(self, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.name = name


def parse_time(name: str, text: str) -> int:
    """Epoch milliseconds from ISO-8601 (naive = UTC) or a whole number of epoch milliseconds."""
    if text.lstrip("-").isdecimal() and text.isascii():
        return int(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, f"expected an ISO-8601 time or epoch milliseconds, got {text[:40]!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - EPOCH) // dt.timedelta(milliseconds=1)


class EventsApi:
    """The server's state: data set, configuration, budgets, fault generator and counters."""

    def __init__(self, events: EventSet, key: str, seed: int, config: dict, generation_seconds: float):
        self.events, self.key, self.seed = events, key, seed
        self.startup_config, self.generation_seconds = dict(config), generation_seconds
        self.configure(config)

    def configure(self, config: dict) -> None:
        """Apply a configuration and start afresh: counters, budgets, fault sequence, real time."""
        self.config = config
        self.clock = clock = Clock()
        window, style = config["rate_window"], config["reset_style"]
        self.pools = {
            name: FixedWindow(limit, window, style, clock=clock.monotonic, wall=clock.time)
            for name, limit in (("header", config["rate_limit"]), ("query", settings.effective_query_limit(config)))
        }
        self.rng = random.Random(f"events-faults:{self.seed}")
        self.statuses: Counter[int] = Counter()
        self.counted = self.faults = self.truncated = self.duplicate_pages = 0
        self.first_response = self.last_response = None
        self.seen = bytearray(self.events.count)  # 1 = served in a complete 200 page
        self.distinct = self.served = 0

    # ---- responses ---------------------------------------------------------------------------------

    def respond(self, status: int, body: bytes, headers: dict, content_type: str = "application/json") -> web.Response:
        now = self.clock.time()
        self.first_response = self.first_response or now
        self.last_response = now
        self.statuses[status] += 1
        return web.Response(body=body, status=status, headers=headers, content_type=content_type)

    def error(self, status: int, code: str, message: str, decision: Decision, **extra) -> web.Response:
        body = orjson.dumps({"error": {"code": code, "message": message, **extra}})
        return self.respond(status, body, decision.headers)

    # ---- GET /events -------------------------------------------------------------------------------

    def handle(self, request: web.Request) -> web.Response:
        header_key, query_key = request.headers.get("X-API-Key"), request.query.get("api_key")
        pool = self.pools["query" if header_key is None and query_key is not None else "header"]
        if (header_key if header_key is not None else query_key) != self.key:
            return self.error(
                401, "UNAUTHORIZED", "Missing or invalid API key (send it in the X-API-Key header)", pool.peek()
            )
        decision = pool.take()
        if not decision.allowed:
            message = f"Rate limit of {pool.limit} requests per {pool.window:g} s exceeded"
            response = self.error(429, "RATE_LIMITED", f"{message}; retry in {decision.retry_after} s", decision)
            response.headers["Retry-After"] = str(decision.retry_after)
            return response
        self.counted += 1
        draws = [self.rng.random() for _ in range(4)]  # fault, truncation, duplicates, a free pick
        decision.headers["X-Request-Id"] = request_id = f"req_{self.seed & 0xFFFF:04x}{self.counted:08x}"
        try:
            spec = self.parse(request.query)
        except BadParameter as exc:
            return self.error(400, "INVALID_PARAMETER", str(exc), decision, parameter=exc.name)
        except CursorError as exc:
            status = self.config["expired_status"] if exc.code == "CURSOR_EXPIRED" else 400
            return self.error(status, exc.code, exc.message, decision)
        if draws[0] < self.config["fault_rate"]:
            return self.server_error(draws[3], decision)
        return self.page(spec, draws, request_id, decision)

    def parse(self, query) -> dict:
        """limit, position, since, until and type of the request (cursor filters win over the query's)."""
        config = self.config
        text = query.get("limit")
        if text is None:
            limit = DEFAULT_LIMIT
        elif not (text.isascii() and text.isdecimal()) or int(text) < 1:
            raise BadParameter("limit", f"expected a whole number >= 1, got {text[:40]!r}")
        else:
            limit = min(int(text), config["page_cap"])
        if query.get("cursor"):
            cursor = decode(query["cursor"], self.clock.time(), self.events.count)
            if cursor.type is not None and cursor.type not in TYPES:
                raise CursorError("INVALID_CURSOR", "Cursor is malformed")
            position, since, until, type_ = cursor.position, cursor.since, cursor.until, cursor.type
        else:
            position, type_ = 0, query.get("type") or None
            if type_ is not None and type_ not in TYPES:
                raise BadParameter("type", f"expected one of {', '.join(TYPES)}, got {type_[:40]!r}")
            since, until = (parse_time(n, query[n]) if query.get(n) else None for n in ("since", "until"))
        if config["no_range"]:
            since = until = None
        return {"limit": limit, "position": position, "since": since, "until": until, "type": type_}

    def page(self, spec: dict, draws: list[float], request_id: str, decision: Decision) -> web.Response:
        events, config, limit = self.events, self.config, spec["limit"]
        first, stop = events.range_positions(spec["since"], spec["until"])
        duplicates = draws[2] < config["duplicate_rate"]
        back = 1 + int(draws[3] * 5) if duplicates else 0  # events of the previous page served again
        if spec["type"] is None:
            start = min(max(first, spec["position"]), stop)  # a forged cursor past the range: an empty page
            repeated = min(back, limit - 1, start - first)
            start -= repeated
            end = min(start + limit, stop)
            data, total, returned = events.run(start, end), stop - first, end - start
            has_more, last = end < stop, end - 1
            positions = range(start, end)
        else:
            of_type = events.of_type(TYPES.index(spec["type"]))
            low, high = bisect_left(of_type, first), bisect_left(of_type, stop)
            i = min(max(low, bisect_left(of_type, spec["position"])), high)
            repeated = min(back, limit - 1, i - low)
            i -= repeated
            positions = of_type[i : min(i + limit, high)]
            data, total, returned = events.pick(positions), high - low, len(positions)
            has_more, last = i + limit < high, positions[-1] if positions else -1
        self.duplicate_pages += repeated > 0
        next_cursor = None
        if has_more:
            last_id = events.event_bytes(last)[len('{"id":"') : len('{"id":"evt_') + 12].decode()
            next_cursor = encode(
                last + 1,
                events.timestamps[last],
                last_id,
                spec["since"],
                spec["until"],
                spec["type"],
                self.clock.time(),
                config["cursor_ttl"],
            )
        if config["id_field"] != "id":
            data = bytes(data).replace(b'{"id":"evt_', b'{"%s":"evt_' % config["id_field"].encode())
        body = self.body(data, limit, has_more, next_cursor, total, returned, request_id)
        if draws[1] < config["truncate_rate"] and len(body) > 2:
            self.truncated += 1
            return self.respond(200, body[: 1 + int(draws[3] * (len(body) - 2))], decision.headers)
        self.mark_served(positions)
        return self.respond(200, body, decision.headers)

    def body(self, data, limit, has_more, next_cursor, total, returned, request_id) -> bytes:
        if self.config["flat"]:
            tail = orjson.dumps({"hasMore": has_more, "nextCursor": next_cursor})
            return b"".join((b'{"data":[', data, b"],", tail[1:]))
        ttl = self.config["cursor_ttl"]
        pagination = {
            "limit": limit,
            "hasMore": has_more,
            "nextCursor": next_cursor,
            "cursorExpiresIn": (int(ttl) if ttl == int(ttl) else ttl) if next_cursor else None,
        }
        meta = {"total": total, "returned": returned, "requestId": request_id}
        tail = orjson.dumps({"pagination": pagination, "meta": meta})
        return b"".join((b'{"data":[', data, b"],", tail[1:]))

    def mark_served(self, positions) -> None:
        """Count served and distinct events (a byte per event: cheap even for millions)."""
        if not positions:
            return
        self.served += len(positions)
        seen = self.seen
        if isinstance(positions, range):
            start, stop = positions.start, positions.stop
            self.distinct += (stop - start) - seen.count(1, start, stop)
            seen[start:stop] = b"\x01" * (stop - start)
            return
        for p in positions:
            self.distinct += not seen[p]
            seen[p] = 1

    def server_error(self, pick: float, decision: Decision) -> web.Response:
        """A 500/502/503, as the application (JSON) or as the proxy in front of it (HTML)."""
        self.faults += 1
        status = (500, 502, 503)[int(pick * 3)]
        if int(pick * 6) % 2:
            title = f"{status} {HTML_ERRORS[status]}"
            html = f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center><hr>"
            return self.respond(
                status,
                f"{html}<center>nginx</center></body></html>".encode(),
                decision.headers,
                content_type="text/html",
            )
        if status == 503:
            decision.headers["Retry-After"] = "1"
        code = {500: "INTERNAL_ERROR", 502: "UPSTREAM_ERROR", 503: "UNAVAILABLE"}[status]
        return self.error(status, code, "Temporary failure, please retry", decision)

    # ---- stats and configuration -------------------------------------------------------------------

    def public_config(self) -> dict:
        return {**self.config, "query_rate_limit": settings.effective_query_limit(self.config)}

    def stats(self) -> dict:
        return {
            "requests": {str(status): n for status, n in sorted(self.statuses.items())},
            "requests_total": sum(self.statuses.values()),
            "rate_limited": self.statuses[429],
            # closed windows of the header-key budget: how much of each the clients used
            "windows": [{"started_at": started, "used": used} for started, used in self.pools["header"].history],
            "faults": self.faults,
            "truncated": self.truncated,
            "duplicate_pages": self.duplicate_pages,
            "first_response_at": self.first_response,
            "last_response_at": self.last_response,
            "events_served": self.served,
            "distinct_events_served": self.distinct,
            "total_events": self.events.count,
            "events_ready": True,
            "seed": self.seed,
            "generation_seconds": round(self.generation_seconds, 3),
            "config": self.public_config(),
        }


API = web.AppKey("events_api", EventsApi)


async def list_events(request: web.Request) -> web.Response:
    return request.app[API].handle(request)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[API].stats(), dumps=lambda v: orjson.dumps(v).decode())


async def configure(request: web.Request) -> web.Response:
    """Merge the posted settings into the current ones (or the startup ones with ``"defaults": true``)."""
    api = request.app[API]
    try:
        changes = await request.json(loads=orjson.loads)
    except ValueError:
        changes = None
    base = api.config
    if isinstance(changes, dict) and changes.pop("defaults", False) is True:
        base = api.startup_config
    try:
        api.configure(settings.merged(base, changes))
    except ValueError as exc:
        name = str(exc).split(":", 1)[0]
        body = {"error": {"code": "INVALID_SETTING", "message": str(exc), "parameter": name}}
        return web.json_response(body, status=400)
    return web.json_response(api.public_config())


async def clock_control(request: web.Request) -> web.Response:
    """Freeze, thaw or advance the server's time (budgets, cursors); answers the clock's state."""
    try:
        body = await request.json(loads=orjson.loads)
    except ValueError:
        body = None
    try:
        return web.json_response(request.app[API].clock.control(body))
    except ValueError as exc:
        name = str(exc).split(":", 1)[0]
        body = {"error": {"code": "INVALID_SETTING", "message": str(exc), "parameter": name}}
        return web.json_response(body, status=400)


def make_app(options: dict) -> web.Application:
    """Generate (or reuse) the data set, then build the app; options are the ``events_*`` CLI values."""
    seed = options.get("events_seed")
    seed = options.get("seed", DEFAULT_SEED) if seed is None else seed
    count = options.get("events_count") or DEFAULT_COUNT
    config = settings.merged(
        settings.defaults(),
        {name: options[f"events_{name}"] for name in settings.TUNABLES if options.get(f"events_{name}") is not None},
    )
    started = time.perf_counter()
    events = cached(seed, count)
    api = EventsApi(
        events, options.get("events_key") or settings.DEFAULT_KEY, seed, config, time.perf_counter() - started
    )
    app = web.Application()
    app[API] = api
    app.router.add_get("/events", list_events)
    app.router.add_get("/events/stats", stats)
    app.router.add_post("/events/config", configure)
    app.router.add_post("/events/clock", clock_control)
    return app


SERVICE = register(Service("events", 8200, make_app, "events API (paginated, rate-limited, cursors)"))
