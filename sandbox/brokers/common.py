"""What the simulated broker sites share: who is listed, search, formats, rate counters, control endpoints.

- Who a site lists: a hash of the site id and the person decides, so every site lists its own
  stable ~70-85 % of the population and ``listing_url(person)`` (the matching benchmark's ground
  truth) needs no server state.
- Search: the name or an alias, case-insensitive, as ``Population.search``; but a place filter
  (city, state, ZIP area) must hold for ONE address, current or past. ``Population.search`` tests
  city and state against any addresses independently, so "Springfield, MO" would wrongly find a
  person who once lived in Springfield IL and later in Kansas City MO.
- Formats: helpers each site combines its own way (name order, phone style, street words).
- Rate counters: per client IP, sliding windows; refused requests are not counted, so a client
  that waits the advertised time gets in.
- Control, on every broker app (never rate limited or challenged)::

      POST /_sandbox/config  {"layout": "v1"|"v2", "rate_limit_per_minute": N, <site keys>,
                              "defaults": true (start from the defaults), "reset": true (clear counters)}
      GET  /_sandbox/config  the config
      GET  /_sandbox/stats   counters, requests per client IP, listed count, config
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable
from html import escape
from typing import Any

from aiohttp import web

from sandbox.population import DEFAULT_SEED, DEFAULT_SIZE, REFERENCE_DATE, Address, Person, default_population

LAYOUTS = ("v1", "v2")
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]  # fmt: skip
STREET_WORDS = {"St": "Street", "Ave": "Avenue", "Dr": "Drive", "Ln": "Lane", "Rd": "Road", "Pl": "Place",
                "Blvd": "Boulevard"}  # fmt: skip

Gate = Callable[[web.Request, "Site"], Awaitable[web.StreamResponse | None]]


# ---- determinism -------------------------------------------------------------------------------------


def digest(*parts: object) -> int:
    """A stable 64-bit number from the parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def is_listed(site_id: str, person: Person, share: float) -> bool:
    """Whether the site lists the person; the name and birth year are mixed in so other seeds differ."""
    return digest(site_id, "listed", person.id, person.first_name, person.last_name, person.birth_year) < share * 2**64


def since_month(site_id: str, person: Person, address: Address) -> tuple[int, int]:
    """(month, year) a site claims the person moved in: the population only knows the year."""
    month = digest(site_id, "since", person.id, address.street) % 12 + 1
    if address.since >= REFERENCE_DATE.year:
        month = min(month, REFERENCE_DATE.month)
    return month, address.since


def reported_month(site_id: str, person: Person, key: str) -> tuple[int, int]:
    """(month, year) between the current address's move-in year and the reference date."""
    first = person.current.since * 12
    last = REFERENCE_DATE.year * 12 + REFERENCE_DATE.month - 1
    index = first + digest(site_id, "reported", person.id, key) % max(1, last - first + 1)
    return index % 12 + 1, index // 12


# ---- formats -----------------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Letters and digits only, case-folded: "St. Louis" == "st-louis"."""
    return "".join(re.findall(r"[a-z0-9]+", text.casefold()))


def name_key(text: str) -> str:
    return " ".join(re.split(r"[\s+\-_]+", text.casefold().strip()))


def slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.casefold()))


def full_name(person: Person) -> str:
    """First, whole middle name and last name ("John Michael Smith")."""
    return " ".join(filter(None, [person.first_name, person.middle_name, person.last_name]))


def long_street(street: str) -> str:
    """Spell the street word out: 1234 Oak Ave -> 1234 Oak Avenue."""
    return " ".join(STREET_WORDS.get(word, word) for word in street.split())


def dashed(number: str) -> str:
    return f"{number[:3]}-{number[3:6]}-{number[6:]}"


def decade(age: int) -> str:
    return f"in their {age // 10 * 10}s"


def month_year(month: int, year: int, short: bool = False) -> str:
    return f"{MONTHS[month - 1][:3] if short else MONTHS[month - 1]} {year}"


def parse_name(text: str) -> tuple[str, str] | None:
    """(first, last) from "john-smith", "John Smith" or "John+Smith"; None without both."""
    parts = name_key(text).split()
    return (parts[0], " ".join(parts[1:])) if len(parts) >= 2 else None


def parse_place(tokens: list[str]) -> tuple[str | None, str | None, str | None]:
    """(city, state, zip) from tokens such as ["kansas", "city", "mo", "64101"], ["IL"] or ["62701"]."""
    tokens = [t for t in tokens if t]
    zip_code = tokens.pop() if tokens and re.fullmatch(r"\d{5}", tokens[-1]) else None
    state = tokens.pop().upper() if tokens and re.fullmatch(r"[A-Za-z]{2}", tokens[-1]) else None
    return " ".join(tokens) or None, state, zip_code


def cf_encode(email: str, key: int) -> str:
    """Cloudflare's e-mail obfuscation: the key byte, then every byte XOR the key, in hex."""
    return f"{key:02x}" + "".join(f"{b ^ key:02x}" for b in email.encode())


def cf_decode(encoded: str) -> str:
    key = int(encoded[:2], 16)
    return bytes(int(encoded[i : i + 2], 16) ^ key for i in range(2, len(encoded), 2)).decode()


def ld_json(value: Any, tail: str = "") -> str:
    """A JSON-LD script block; ``tail`` lets a site reproduce broken blocks (``";"`` after the object)."""
    return f"<script type='application/ld+json'>{json.dumps(value, ensure_ascii=False)}{tail}</script>"


def hashed(name: str) -> str:
    """A CSS-modules-like class name for layout v2 ("card" -> "sc-1a2b3c")."""
    return f"sc-{digest('class', name) % 16**6:06x}"


def html_page(brand: str, title: str, body: str, *, head: str = "", status: int = 200,
              headers: dict | None = None) -> web.Response:  # fmt: skip
    html = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>{head}</head>"
        f"<body><header class='site-header'><a href='/'>{escape(brand)}</a></header><main>{body}</main>"
        f"<footer>&copy; {REFERENCE_DATE.year} {escape(brand)}</footer></body></html>"
    )
    return web.Response(text=html, status=status, headers=headers, content_type="text/html")


# ---- the site ----------------------------------------------------------------------------------------


class Site:
    """One broker's listed people with name/phone/e-mail indexes, its config, counters and rate windows."""

    def __init__(self, site_id: str, options: dict, share: float, defaults: dict, gate: Gate | None = None):
        self.id, self.gate = site_id, gate
        self.population = default_population(options.get("seed", DEFAULT_SEED), options.get("people", DEFAULT_SIZE))
        self.people = [p for p in self.population.people if is_listed(site_id, p, share)]
        self.ids = {p.id for p in self.people}
        self.by_name: dict[str, list[Person]] = defaultdict(list)
        self.by_phone: dict[str, list[Person]] = defaultdict(list)
        self.by_email: dict[str, list[Person]] = defaultdict(list)
        for person in self.people:
            for key in dict.fromkeys(name_key(n) for n in [f"{person.first_name} {person.last_name}", *person.aliases]):
                self.by_name[key].append(person)
            for phone in dict.fromkeys(p.number for p in person.phones):
                self.by_phone[phone].append(person)
            for email in person.emails:
                self.by_email[email.casefold()].append(person)
        self.defaults = {"layout": "v1", **defaults}
        self.config = dict(self.defaults)
        self.counters: Counter = Counter()
        self.clients: Counter = Counter()
        self.windows: dict[str, dict[str, deque]] = defaultdict(lambda: defaultdict(deque))

    @property
    def v2(self) -> bool:
        return self.config["layout"] == "v2"

    def listed(self, person: Person | None) -> bool:
        return person is not None and person.id in self.ids

    def search(self, first: str, last: str, city: str | None = None, state: str | None = None,
               zip_code: str | None = None) -> list[Person]:  # fmt: skip
        """Listed people named (or also known as) first last, with one address in the place, if given."""
        found = self.by_name.get(name_key(f"{first} {last}"), [])
        if not (city or state or zip_code):
            return list(found)

        def there(a: Address) -> bool:
            return ((not city or fold(a.city) == fold(city)) and (not state or a.state == state.upper())
                    and (not zip_code or a.zip[:3] == zip_code[:3]))  # fmt: skip

        return [p for p in found if any(map(there, p.addresses))]

    def admit(self, window: str, request: web.Request, limit: int, seconds: float) -> int | None:
        """Count the request if the client's window has room (None); otherwise the seconds to wait."""
        if limit <= 0:
            return None
        times, now = self.windows[window][client_ip(request)], time.monotonic()
        while times and times[0] <= now - seconds:
            times.popleft()
        if len(times) < limit:
            times.append(now)
            return None
        return max(1, math.ceil(times[len(times) - limit] + seconds - now))

    def configure(self, changes: dict) -> dict:
        """Validate everything first, then apply; raises ValueError naming the bad setting."""
        defaults, reset = changes.pop("defaults", False) is True, changes.pop("reset", False) is True
        for key, value in changes.items():
            if key not in self.defaults:
                raise ValueError(f"{key}: unknown setting; known: {', '.join(self.defaults)}")
            default = self.defaults[key]
            if key == "layout":
                ok = value in LAYOUTS
            elif isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
            else:
                ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
            if not ok:
                raise ValueError(f"{key}: invalid value {value!r} (default {default!r})")
        if defaults:
            self.config = dict(self.defaults)
        if reset:
            self.counters.clear()
            self.clients.clear()
            self.windows.clear()
        self.config.update(changes)
        return self.config


def client_ip(request: web.Request) -> str:
    return request.remote or "unknown"


SITE = web.AppKey("broker_site", Site)


@web.middleware
async def protect(request: web.Request, handler) -> web.StreamResponse:
    """Count every request and put the site's defences (its gate) in front of its pages."""
    site = request.app[SITE]
    if request.path.startswith("/_sandbox/") or request.path == "/health":
        return await handler(request)
    site.counters["requests"] += 1
    site.clients[client_ip(request)] += 1
    early = await site.gate(request, site) if site.gate else None
    if early is not None:
        return early
    try:
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
        return web.json_response(site.configure(changes))
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)


async def stats(request: web.Request) -> web.Response:
    site = request.app[SITE]
    return web.json_response({
        "site": site.id, "listed": len(site.people), "people": len(site.population.people),
        "counters": dict(site.counters), "clients": dict(site.clients), "config": site.config,
    })  # fmt: skip


def make_site_app(site_id: str, options: dict, share: float, defaults: dict,
                  gate: Gate | None = None) -> tuple[web.Application, Site]:  # fmt: skip
    """The application with the control endpoints and the counting middleware; the caller adds its routes."""
    site = Site(site_id, options, share, defaults, gate)
    app = web.Application(middlewares=[protect])
    app[SITE] = site
    app.router.add_get("/_sandbox/config", configure)
    app.router.add_post("/_sandbox/config", configure)
    app.router.add_get("/_sandbox/stats", stats)
    return app, site
