"""A Spokeo / Whitepages-like broker: a JavaScript application over its own JSON API.

    GET /, /search?q=First+Last&loc=City,+ST, /person/{11-char id}   the same empty HTML shell
    GET /static/app.js                                               the application (plain JS, per layout)
    GET /api/search?q=&loc=&cursor=     {"total", "results": [10 masked teasers], "next_cursor"}
    GET /api/person/{id}                full values
    GET /optout                         the shell: the app's opt-out (no terms modal there)
    GET /api/optout/search?name=&state= {"results": [every listed match, teasers]}
    POST /api/optout  {"id", "email"}   the opt-out request (JSON, from the app)

Why: such sites send no data in their HTML; a browser runs the bundle, which
shows a terms-of-service modal ("I Agree", remembered in localStorage and the
``ps_tos`` cookie) and only then calls the API with ``X-Requested-With: app``.
The API answers 403 to anything without that header and cookie, as the real
ones refuse plain HTTP clients, so crawling needs a browser (scrapy-playwright)
or a client that imitates one. Search teasers are masked ("in their 40s",
"(217) 555-01XX", "j***@example.com"); the profile gives full values. The
rendered DOM has hashed class names that change with layout v2 (which also
renders results as a table and reorders profile sections); ``data-qa-*``
attributes stay the same in both layouts, as they do on real sites.
Layouts structural, jsonld and partial (sandbox/brokers/spa_layouts.py) are the redesigns
self-healing extraction is measured on; the API, the pages' status codes and the defences stay
as they are, only what the app renders changes, and always with the same values:
structural renders results as a table (one ``<tr data-qa-result>`` per person, the name cell
linking the profile) and the profile as a ``<dl>`` (``Age:``, ``Phones``, ``Emails``, ``Possible
relatives``, ``Address history``, ``AKA``), with no other ``data-qa-*`` inside; jsonld writes
schema.org JSON-LD into ``<head>`` (an ``ItemList`` of ``ListItem {url, item: Person}``; a ``Person``
with ``alternateName``, ``telephone``, ``email``, ``address`` as ``PostalAddress``, ``relatedTo``)
beside a bare ``<ul>`` of name links or an ``<h1>`` and "40 years old"; partial keeps v1's markup
with about half the class names and ``data-qa-*`` attributes renamed, a wrapper or two added and
"Phone numbers" reworded to "Phones". In every layout the hooks the crawler's page actions click
or wait on stay as in v1 (the terms button, ``[data-qa-result]``, ``[data-qa-person]``,
``[data-qa-empty]`` "No results found for ...", ``[data-qa-error]``, "Show more results").
The opt-out is the app too (``/optout``): search yourself by name and state, press "This is me" on your
listing (``[data-qa-optout-result][data-url=PATH] [data-qa-optout-select]``), enter an e-mail, submit
(``[data-qa-optout-submit]``); the app POSTs JSON and shows ``[data-qa-optout-done]``. Its API needs the
``X-Requested-With`` header but not the terms cookie. A request is counted (``/__optouts``) and
``optout_processing_seconds`` (default 1 day) later the profile is gone: the API answers 404 "Not found"
(the app shows it), the shell 404, and searches leave it out.
Past ``rate_limit_per_minute`` API calls a minute (default 120) the API answers
429 with ``Retry-After``; pages and the script are never limited.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

from aiohttp import web

from sandbox.brokers.common import decade, is_listed, opaque_id
from sandbox.brokers.control import SITE, Site, make_site_app, minute_limit
from sandbox.brokers.optouts import install, valid_email
from sandbox.brokers.spa_assets import app_js, shell_html
from sandbox.population import Person, Population
from sandbox.server import Service, register

SITE_ID = "spa"
SHARE = 0.74
PAGE_SIZE = 10
DEFAULT_RATE_LIMIT = 120
PROCESSING_DAYS = 1
MAX_OPTOUT_RESULTS = 50
TOS_COOKIE, TOS_VERSION = "ps_tos", "2024-06"
INDEX_KEY = web.AppKey("index", dict)  # 11-char id -> Person (listed people only)


def listing_url(person: Person) -> str | None:
    """Ground truth: this person's profile path on the site, or None when the site does not list them."""
    return f"/person/{opaque_id(SITE_ID, person)}" if is_listed(SITE_ID, person, SHARE) else None


def display_name(person: Person) -> str:
    """The site shows full middle names: "John Michael Smith"."""
    return " ".join(filter(None, [person.first_name, person.middle_name, person.last_name]))


def location(city: str, state: str) -> str:
    return f"{city}, {state}"


def phone(number: str) -> str:
    return f"({number[:3]}) {number[3:6]}-{number[6:]}"


def mask_phone(number: str) -> str:
    return phone(number)[:-2] + "XX"


def mask_email(email: str) -> str:
    user, domain = email.split("@", 1)
    return f"{user[0]}***@{domain}"


def teaser(person: Person) -> dict:
    past = list(dict.fromkeys(location(a.city, a.state) for a in person.addresses[1:]))
    return {
        "id": opaque_id(SITE_ID, person),
        "name": display_name(person),
        "age_range": decade(person.age),
        "location": location(person.current.city, person.current.state),
        "past_locations": past[:3],
        "phone": mask_phone(person.phones[0].number) if person.phones else None,
        "email": mask_email(person.emails[0]) if person.emails else None,
        "url": listing_url(person),
    }


def profile(person: Person, population: Population) -> dict:
    relatives = [population.get(r) for r in person.relatives]
    return {
        "id": opaque_id(SITE_ID, person),
        "name": display_name(person),
        "first_name": person.first_name,
        "middle_name": person.middle_name,
        "last_name": person.last_name,
        "age": person.age,
        "aliases": person.aliases,
        "addresses": [
            {
                "street": a.street,
                "city": a.city,
                "state": a.state,
                "zip": a.zip,
                "since": a.since,
                "current": i == 0,
                "full": a.line(),
            }
            for i, a in enumerate(person.addresses)
        ],
        "phones": [{"number": phone(p.number), "type": p.type, "carrier": p.carrier} for p in person.phones],
        "emails": person.emails,
        "relatives": [{"name": display_name(r), "url": listing_url(r)} for r in relatives],
    }


def parse_query(q: str, loc: str) -> tuple[str, str, str, str] | None:
    """ "First [Middle] Last" and "City, ST" / "ST" / "City" -> (first, last, state, city)."""
    words = q.split()
    if len(words) < 2:
        return None
    parts = [p.strip() for p in loc.split(",") if p.strip()]
    state = city = ""
    if len(parts) >= 2:
        city, state = parts[0], parts[-1]
    elif parts and re.fullmatch(r"[A-Za-z]{2}", parts[0]):
        state = parts[0]
    elif parts:
        city = parts[0]
    return words[0], words[-1], state.upper(), city


def encode_cursor(key: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key, "o": offset}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, key: str) -> int | None:
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return data["o"] if data["k"] == key and isinstance(data["o"], int) and data["o"] >= 0 else None
    except (ValueError, KeyError, TypeError):
        return None


def api_refusal(request: web.Request) -> web.Response | None:
    """Plain HTTP clients get 403: the app sends the header, and the cookie once the terms are accepted."""
    if request.headers.get("X-Requested-With") != "app":
        return web.json_response({"error": "Forbidden"}, status=403)
    if request.cookies.get(TOS_COOKIE) != TOS_VERSION:
        return web.json_response({"error": "Please accept the terms of service", "tos": TOS_VERSION}, status=403)
    return None


async def api_search(request: web.Request) -> web.Response:
    if refusal := api_refusal(request):
        return refusal
    q, loc = request.query.get("q", "").strip(), request.query.get("loc", "").strip()
    parsed = parse_query(q, loc)
    if parsed is None:
        return web.json_response({"error": "Enter a first and last name"}, status=400)
    first, last, state, city = parsed
    key = hashlib.sha256(f"{first}|{last}|{state}|{city}".casefold().encode()).hexdigest()[:12]
    offset = decode_cursor(request.query["cursor"], key) if request.query.get("cursor") else 0
    if offset is None:
        return web.json_response({"error": "Invalid cursor"}, status=400)
    site = request.app[SITE]
    found = [p for p in site.population.search(first, last, state or None, city or None) if site.listed(p)]
    end = offset + PAGE_SIZE
    return web.json_response(
        {
            "query": {"q": q, "loc": loc},
            "total": len(found),
            "results": [teaser(p) for p in found[offset:end]],
            "next_cursor": encode_cursor(key, end) if end < len(found) else None,
        }
    )


async def api_person(request: web.Request) -> web.Response:
    if refusal := api_refusal(request):
        return refusal
    person = request.app[INDEX_KEY].get(request.match_info["pid"])
    if person is None or request.app[SITE].optouts.hidden(person):
        return web.json_response({"error": "Not found"}, status=404)
    return web.json_response(profile(person, request.app[SITE].population))


def app_only(request: web.Request) -> web.Response | None:
    """The opt-out API takes the app's header (the terms are not asked for there)."""
    if request.headers.get("X-Requested-With") != "app":
        return web.json_response({"error": "Forbidden"}, status=403)
    return None


async def api_optout_search(request: web.Request) -> web.Response:
    if refusal := app_only(request):
        return refusal
    words = request.query.get("name", "").split()
    state = request.query.get("state", "").strip()
    if len(words) < 2 or (state and not re.fullmatch(r"[A-Za-z]{2}", state)):
        return web.json_response({"error": "Enter your first and last name and a state"}, status=400)
    site = request.app[SITE]
    found = [p for p in site.population.search(words[0], words[-1], state or None) if site.listed(p)]
    return web.json_response({"total": len(found), "results": [teaser(p) for p in found[:MAX_OPTOUT_RESULTS]]})


async def api_optout(request: web.Request) -> web.Response:
    if refusal := app_only(request):
        return refusal
    try:
        data = await request.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return web.json_response({"error": "expected a JSON object"}, status=400)
    site, pid, email = request.app[SITE], str(data.get("id", "")), str(data.get("email", "")).strip()
    person = request.app[INDEX_KEY].get(pid)
    if person is None:
        return web.json_response({"error": "Select your listing"}, status=400)
    if not valid_email(email):
        return web.json_response({"error": "Enter a valid e-mail address"}, status=400)
    site.optouts.submit(listing_url(person), person)
    return web.json_response({"status": "received", "processing_days": PROCESSING_DAYS})


async def shell(request: web.Request) -> web.Response:
    """Every page is the same shell: the data only ever arrives through the API."""
    status = 200
    if pid := request.match_info.get("pid"):
        status = 200 if request.app[SITE].listed(request.app[INDEX_KEY].get(pid)) else 404
    return web.Response(text=shell_html(), status=status, content_type="text/html")


async def script(request: web.Request) -> web.Response:
    layout = request.app[SITE].config["layout"]
    return web.Response(
        text=app_js(layout, TOS_COOKIE, TOS_VERSION),
        content_type="application/javascript",
        headers={"Cache-Control": "no-store"},
    )


def refuse(_request: web.Request, _site: Site, wait: int) -> web.Response:
    body = {"error": "Too many requests", "retry_after": wait}
    return web.json_response(body, status=429, headers={"Retry-After": str(wait)})


def api_call(request: web.Request) -> bool:
    """Only API calls are counted and limited; the pages and the script never are."""
    return request.path.startswith("/api/")


def make_app(options: dict) -> web.Application:
    defaults = {"rate_limit_per_minute": DEFAULT_RATE_LIMIT, "optout_processing_seconds": PROCESSING_DAYS * 86400.0}
    app, site = make_site_app(SITE_ID, options, SHARE, defaults, minute_limit(refuse), counted=api_call, flat=True)
    app[INDEX_KEY] = {opaque_id(SITE_ID, p): p for p in site.people}
    for path in ("/", "/search", "/person/{pid}", "/optout"):
        app.router.add_get(path, shell)
    app.router.add_get("/static/app.js", script)
    app.router.add_get("/api/search", api_search)
    app.router.add_get("/api/person/{pid}", api_person)
    app.router.add_get("/api/optout/search", api_optout_search)
    app.router.add_post("/api/optout", api_optout)
    install(app, site, listing_url)
    return app


SERVICE = register(Service(SITE_ID, 8403, make_app, "Spokeo/Whitepages-like broker: JS app, ToS modal, JSON API"))
