"""A Radaris / CyberBackgroundChecks-like broker: a POST search form, sectioned profiles, hard limits.

    GET  /                                       search form; sets the session cookie, hidden CSRF ``_token``
    POST /ng/search   ff, fl, fs, fc, _token     first, last, state, city -> 303 to the results
    GET  /people/{First-Last}[/{ST}[/{City}]][/{page}]   10 cards a page
    GET  /p/{First}/{Last}/{id}                   profile; a wrong name for a known id gets a 301 to the right one
    GET  /privacy                                 privacy policy; its ``a#optout`` links to the opt-out form
    GET  /control/privacy                         404: the opt-out page that moved
    GET  /ng/privacy/remove                       the opt-out form: profile URL, e-mail, hidden CSRF ``_token``
    POST /ng/privacy/remove  profile_url, email, _token   -> "Your request has been received"

Why these quirks: the real sites bind a CSRF token to a session cookie, so a
crawler must load the form before it can search (403 "Invalid session"
otherwise); their result URLs are plain GET pages a crawler can page through;
``ul.pagination`` disables the *next* item on the last page (and the *prev* item
on the first, so ``li.disabled`` alone is not the signal); and past N requests
a minute per client they answer a hard 403 with ``Retry-After`` (default 30/min).
Layout v2 (``POST /_sandbox/config``) is a redesign: results in a table, profile
sections reordered under other headings and wrappers; the values stay the same.
Three more redesigns (``radaris_layouts.py``), on which self-healing extraction is measured, keep every
v1 value in its v1 text, the listing URLs, v1's ``ul.pagination``, the "No people found" and "Profile
not found" pages and the defences: ``structural`` lists the people in ``table.people-table`` (one row
each, th column headers, the link in the name cell) and shows a profile as one ``dl.person-details``
(labels "Age:", "Location", "Addresses", "Relatives", "AKA", "Phones", "Emails", "Associates", in that
order; empty groups left out); ``jsonld`` has a bare ``<ul>`` of links and an <h1> with "45 years old"
in the markup, the data in schema.org JSON-LD (an ItemList of ListItem url + Person; a Person with
alternateName, telephone, email, address as PostalAddress, relatedTo and knows for the associates; the
address years and phone line types are not shown); ``partial`` is v1 with about half the class names
renamed (``card``, ``age``, ``card-info``, ``profile-age``, ``profile-aka``, ``section-label``, ``email``,
``dates``), wrappers added and one label reworded per page ("Has lived in" -> "Previously lived in",
"Possible Relatives" -> "Relatives").
Opt-out: the page moved, as opt-out URLs do (an audit of a state broker registry found many stale):
the old ``/control/privacy`` answers 404 and the privacy policy links to the new form, which takes the
profile URL and an e-mail under the same session-bound CSRF token as the search (403 "Invalid session"
without it). A counted submission removes the profile ``optout_processing_seconds`` later (default 300
days, what the real site says): "Profile not found" (404) as for an unknown id, and searches leave it
out. Then a data refresh: ``relist_share`` (0..1, default 0.3) of the removed profiles, the same people
on every run (``common.digest``), come back ``relist_seconds`` (default 30 days) after their removal, at
the same URL (``/__optouts`` "relisted"); once: removed again, they stay removed.
Values are formatted the site's way: "John M Smith", phones "217-555-0123",
cities "Springfield, IL", address history with year ranges.
"""

from __future__ import annotations

import hmac
import re
from html import escape

from aiohttp import web

from sandbox.brokers import radaris_layouts as layouts
from sandbox.brokers.common import form_session, is_listed, opaque_id, stable_order
from sandbox.brokers.control import SITE, Site, make_site_app, minute_limit
from sandbox.brokers.optouts import install, valid_email
from sandbox.brokers.radaris_layouts import Card, Link, Profile
from sandbox.population import Person
from sandbox.server import Service, register

SITE_ID = "radaris"
SHARE = 0.82
PAGE_SIZE = 10
DEFAULT_RATE_LIMIT = 30
PROCESSING_DAYS = 300
DEFAULTS = {
    "rate_limit_per_minute": DEFAULT_RATE_LIMIT,
    "optout_processing_seconds": PROCESSING_DAYS * 86400.0,
    "relist_share": 0.3,
    "relist_seconds": 30 * 86400.0,
}
OPT_OUT_PATH = "/ng/privacy/remove"
SESSION_COOKIE = "rdr_session"
ID_DIGITS = "0123456789"
INDEX_KEY = web.AppKey("index", dict)  # radaris id -> Person (listed people only)
SESSIONS_KEY = web.AppKey("sessions", dict)  # session id -> CSRF token
SECTIONS = layouts.V1_SECTIONS
V2_ORDER = ["Address History", "Possible Relatives", "Phone Numbers", "Possible Associates", "Email Addresses"]


def radaris_id(person: Person) -> str:
    return "U" + opaque_id(SITE_ID, person, length=9, alphabet=ID_DIGITS)


def listing_url(person: Person) -> str | None:
    """Ground truth: this person's profile path on the site, or None when the site does not list them."""
    if not is_listed(SITE_ID, person, SHARE):
        return None
    return f"/p/{person.first_name}/{person.last_name}/{radaris_id(person)}"


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def display_name(person: Person) -> str:
    middle = f" {person.middle_name[0]}" if person.middle_name else ""
    return f"{person.first_name}{middle} {person.last_name}"


def phone(number: str) -> str:
    return f"{number[:3]}-{number[3:6]}-{number[6:]}"


def city_state(city: str, state: str) -> str:
    return f"{city}, {state}"


def past_cities(person: Person) -> list[str]:
    current = city_state(person.current.city, person.current.state)
    seen = dict.fromkeys(city_state(a.city, a.state) for a in person.addresses[1:])
    return [c for c in seen if c != current]


def page(request: web.Request, title: str, body: str, status: int = 200) -> web.Response:
    layout = request.app[SITE].config["layout"]
    html = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)} - Radaris</title>"
        f"</head><body class='layout-{layout}'><header class='top'><a href='/' class='logo'>Radaris</a></header>"
        f"<main>{body}</main><footer>&copy; Radaris sandbox</footer></body></html>"
    )
    return web.Response(text=html, status=status, content_type="text/html")


def refuse(_request: web.Request, _site: Site, wait: int) -> web.Response:
    body = (
        "<!doctype html><html><head><title>Access denied</title></head><body><h1>Access denied</h1>"
        f"<p>Too many requests from your network. Try again in {wait} seconds.</p></body></html>"
    )
    return web.Response(text=body, status=403, content_type="text/html", headers={"Retry-After": str(wait)})


def search_form(token: str) -> str:
    return (
        "<form id='search-form' method='post' action='/ng/search'>"
        f"<input type='hidden' name='_token' value='{token}'>"
        "<input name='ff' placeholder='First name'><input name='fl' placeholder='Last name'>"
        "<input name='fs' placeholder='State' maxlength='2'><input name='fc' placeholder='City'>"
        "<button type='submit'>Search</button></form>"
    )


def session(request: web.Request) -> tuple[str, str, bool]:
    """(session id, its CSRF token, whether it is new: set the cookie) for a page with a form."""
    return form_session(request.app[SESSIONS_KEY], request.cookies.get(SESSION_COOKIE, ""))


def with_session(response: web.Response, session: str, fresh: bool) -> web.Response:
    if fresh:
        response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True, samesite="Lax")
    return response


def valid_token(request: web.Request, form) -> str | None:
    """The session's CSRF token when the form carries it, else None."""
    expected = request.app[SESSIONS_KEY].get(request.cookies.get(SESSION_COOKIE, ""))
    token = str(form.get("_token", ""))
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        return None
    return expected


async def home(request: web.Request) -> web.Response:
    session_id, token, fresh = session(request)
    response = page(request, "People search", "<h1>Find anyone</h1>" + search_form(token))
    return with_session(response, session_id, fresh)


def results_path(first: str, last: str, state: str = "", city: str = "", number: int = 1) -> str:
    parts = [f"{slug(first.title())}-{slug(last.title())}", state.upper(), slug(city.title())]
    path = "/people/" + "/".join(p for p in parts if p)
    return path + (f"/{number}" if number > 1 else "")


async def search_post(request: web.Request) -> web.Response:
    form = await request.post()
    expected = valid_token(request, form)
    if expected is None:
        return page(request, "Invalid session", "<p class='error'>Invalid session</p>", status=403)
    first, last = str(form.get("ff", "")).strip(), str(form.get("fl", "")).strip()
    state, city = str(form.get("fs", "")).strip(), str(form.get("fc", "")).strip()
    if not first or not last or (state and not re.fullmatch(r"[A-Za-z]{2}", state)):
        body = "<p class='error'>Please enter a first and last name.</p>" + search_form(expected)
        return page(request, "People search", body, status=400)
    raise web.HTTPSeeOther(results_path(first, last, state, city))


def parse_results_path(tail: str) -> tuple[str, str, str, str, int] | None:
    """``First-Last[/ST[/City]][/page]`` -> (first, last, state, city slug, page), or None."""
    segments = [s for s in tail.split("/") if s]
    if not segments or segments[0].count("-") != 1:
        return None
    first, last = segments.pop(0).split("-")
    number = int(segments.pop()) if segments and segments[-1].isdigit() else 1
    state = segments.pop(0).upper() if segments and re.fullmatch(r"[A-Za-z]{2}", segments[0]) else ""
    city = segments.pop(0) if segments else ""
    return (first, last, state, city, number) if first and last and not segments and number >= 1 else None


def found_people(request: web.Request, first: str, last: str, state: str, city: str) -> list[Person]:
    site = request.app[SITE]
    people = site.population.search(first, last, state=state or None)
    wanted = city.casefold()
    return [
        p
        for p in people
        if site.listed(p) and (not wanted or any(slug(a.city).casefold() == wanted for a in p.addresses))
    ]


def card(person: Person) -> Card:
    """What a v1 card shows of the person, for the redesigns."""
    current = city_state(person.current.city, person.current.state)
    name, url = display_name(person), listing_url(person)
    return Card(url, radaris_id(person), name, person.age, current, list(person.aliases), past_cities(person))


def origin(request: web.Request) -> str:
    """The site's own origin, for the absolute URLs of JSON-LD."""
    return str(request.url.origin())


def card_v1(person: Person) -> str:
    rows = [("Age", str(person.age)), ("Lives in", city_state(person.current.city, person.current.state))]
    if person.aliases:
        rows.append(("Also known as", ", ".join(person.aliases)))
    if past_cities(person):
        rows.append(("Has lived in", "; ".join(past_cities(person))))
    info = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    return (
        f"<div class='card teaser-card' data-id='{radaris_id(person)}'><div class='card-title'>"
        f"<a href='{listing_url(person)}'>{escape(display_name(person))}</a>, <span class='age'>{person.age}</span>"
        f"</div><dl class='card-info'>{info}</dl></div>"
    )


def table_v2(people: list[Person]) -> str:
    head = "".join(f"<th>{h}</th>" for h in ["Name", "Location", "Age", "Also known as", "Has lived in"])
    rows = "".join(
        f"<tr class='rx-row' data-person='{radaris_id(p)}'><td class='rx-cell rx-name'><div class='rx-wrap'>"
        f"<a class='rx-link' href='{listing_url(p)}'>{escape(display_name(p))}</a></div></td>"
        f"<td class='rx-cell'>{escape(city_state(p.current.city, p.current.state))}</td>"
        f"<td class='rx-cell rx-age'>{p.age}</td><td class='rx-cell rx-aka'>{escape(', '.join(p.aliases))}</td>"
        f"<td class='rx-cell rx-past'>{escape('; '.join(past_cities(p)))}</td></tr>"
        for p in people
    )
    table = f"<table class='rx-table'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    return f"<div class='rx-results'>{table}</div>"


def pagination(parsed: tuple, number: int, last_page: int, layout: str) -> str:
    first, last, state, city, _ = parsed

    def item(label: str, target: int, kind: str, off: bool) -> str:
        disabled = " disabled" if layout == "v1" else " is-off"
        if off:
            return f"<li class='{kind}{disabled}'><span>{label}</span></li>"
        return f"<li class='{kind}'><a href='{results_path(first, last, state, city, target)}'>{label}</a></li>"

    numbers = [item(str(n), n, "active" if n == number else "page", False) for n in range(1, last_page + 1)]
    items = item("&lsaquo; Prev", number - 1, "prev", number == 1) + "".join(numbers)
    items += item("Next &rsaquo;", number + 1, "next", number == last_page)
    if layout == "v1":
        return f"<ul class='pagination'>{items}</ul>"
    return f"<nav class='rx-pager'><ol class='rx-pages'>{items}</ol></nav>"


async def results(request: web.Request) -> web.Response:
    parsed = parse_results_path(request.match_info["tail"])
    if parsed is None:
        return page(request, "Not found", "<p class='error'>Page not found</p>", status=404)
    first, last, state, city, number = parsed
    found = found_people(request, first, last, state, city)
    layout = request.app[SITE].config["layout"]
    title = f"{first.title()} {last.title()}"
    if not found:
        return page(request, title, f"<h1>{escape(title)}</h1><p class='no-results'>No people found</p>")
    last_page = -(-len(found) // PAGE_SIZE)
    if number > last_page:
        return page(request, title, "<p class='no-results'>No people found</p>", status=404)
    shown = found[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    place = ", ".join(filter(None, [city.replace("-", " ").title(), state]))
    where = f" in {escape(place)}" if place else ""
    count = f"{len(found)} people found{where}"
    if layout == "v1":
        body = f"<h1 class='search-title'>{escape(title)}</h1>"
        body += f"<p class='results-count'>{count}</p>"
        body += f"<div class='results'>{''.join(map(card_v1, shown))}</div>"
    elif layout == "v2":
        count = f"<small class='rx-count'>{len(found)} records</small>"
        body = f"<div class='rx-head'><h1 class='rx-title'>{escape(title)}{count}</h1></div>"
        body += table_v2(shown)
    elif layout == "jsonld":
        body = layouts.jsonld_results(title, count, list(map(card, shown)), origin(request))
    else:
        render = layouts.structural_results if layout == "structural" else layouts.partial_results
        body = render(title, count, list(map(card, shown)))
    # the redesigns after v2 keep v1's pagination markup: the measured heals are of the data, not of paging
    pager = pagination(parsed, number, last_page, "v2" if layout == "v2" else "v1")
    return page(request, title, body + pager)


def profile_data(request: web.Request, person: Person) -> Profile:
    """What a profile shows of the person, whatever the layout."""
    site = request.app[SITE]

    def link(other: Person) -> Link:
        return Link(display_name(other), listing_url(other))

    residences, until = [], "present"
    for a in person.addresses:
        residences.append((a, f"{a.since} - {until}"))
        until = str(a.since)
    relatives = [site.population.get(r) for r in person.relatives]
    home = (person.current.city, person.current.state)
    neighbours = [
        p
        for p in site.visible(site.people)
        if (p.current.city, p.current.state) == home and p.id != person.id and p.id not in person.relatives
    ]
    associates = stable_order(SITE_ID, person.id, neighbours)[:3]
    return Profile(
        name=display_name(person),
        age=person.age,
        where=city_state(person.current.city, person.current.state),
        aliases=list(person.aliases),
        phones=[(phone(p.number), p.type) for p in person.phones],
        emails=list(person.emails),
        residences=residences,
        relatives=[link(r) for r in relatives],
        associates=[link(a) for a in associates],
    )


async def profile(request: web.Request) -> web.Response:
    person = request.app[INDEX_KEY].get(request.match_info["rid"])
    if person is None or request.app[SITE].optouts.hidden(person):
        return page(request, "Not found", "<p class='error'>Profile not found</p>", status=404)
    if request.path != listing_url(person):
        raise web.HTTPMovedPermanently(listing_url(person))
    data = profile_data(request, person)
    layout = request.app[SITE].layout
    if layout == "jsonld":
        return page(request, data.name, layouts.jsonld_profile(data, origin(request)))
    if layout in ("structural", "partial"):
        render = layouts.structural_profile if layout == "structural" else layouts.partial_profile
        return page(request, data.name, render(data))
    items = layouts.section_items(data)
    where = escape(data.where)
    aka = escape(", ".join(person.aliases))
    if layout == "v1":
        body = f"<div class='profile'><h1 class='profile-name'>{escape(display_name(person))}</h1>"
        body += f"<div class='profile-age'>Age {person.age}</div><div class='profile-location'>{where}</div>"
        body += f"<dl class='profile-aka'><dt>Also known as</dt><dd>{aka}</dd></dl>" if aka else ""
        for label in SECTIONS:
            lis = "".join(f"<li>{i}</li>" for i in items[label]) or "<li class='none'>None found</li>"
            heading = f"<h2 class='section-label'>{label}</h2>"
            body += f"<div class='section'>{heading}<ul class='section-list'>{lis}</ul></div>"
        return page(request, display_name(person), body + "</div>")
    body = "<article class='rx-profile'><header class='rx-head'><div class='rx-wrap'>"
    body += f"<h1 class='rx-name'>{escape(display_name(person))}</h1><p class='rx-meta'>"
    body += f"<span class='rx-age'>{person.age} years old</span> &middot; <span class='rx-loc'>{where}</span></p>"
    body += f"<p class='rx-aka'>AKA: {aka}</p>" if aka else ""
    body += "</div></header>"
    for label in V2_ORDER:
        lis = "".join(f"<li class='rx-item'>{i}</li>" for i in items[label])
        inner = f"<h3 class='rx-heading'>{label}</h3><ol class='rx-items'>{lis}</ol>"
        body += f"<section class='rx-block'><div class='rx-inner'>{inner}</div></section>"
    return page(request, display_name(person), body + "</article>")


# ---- opt-out -------------------------------------------------------------------------------------------


async def moved(request: web.Request) -> web.Response:
    return page(request, "Page not found", "<h1>Page not found</h1><p>The page you requested does not exist.</p>", 404)


async def privacy(request: web.Request) -> web.Response:
    body = (
        "<article class='policy'><h1>Privacy Policy</h1><p>Radaris collects publicly available information "
        "from public records, social networks and other sources.</p><h2>Your choices</h2>"
        "<p>You can ask us to remove your profile from our search results: "
        f"<a id='optout' href='{OPT_OUT_PATH}'>Remove my information</a>. We process requests within "
        f"{PROCESSING_DAYS} days. Profiles may reappear when our sources are refreshed.</p></article>"
    )
    return page(request, "Privacy Policy", body)


def optout_form(token: str, url: str = "", email: str = "", error: str = "") -> str:
    return (
        "<h1>Remove my information</h1>"
        + (f"<p class='error'>{escape(error)}</p>" if error else "")
        + f"<form id='optout-form' method='post' action='{OPT_OUT_PATH}'>"
        f"<input type='hidden' name='_token' value='{token}'>"
        f"<label>Profile URL <input name='profile_url' value='{escape(url)}'></label>"
        f"<label>E-mail <input name='email' type='email' value='{escape(email)}'></label>"
        "<button type='submit'>Remove</button></form>"
    )


async def optout(request: web.Request) -> web.Response:
    session_id, token, fresh = session(request)
    return with_session(page(request, "Remove my information", optout_form(token)), session_id, fresh)


async def optout_post(request: web.Request) -> web.Response:
    form = await request.post()
    expected = valid_token(request, form)
    if expected is None:
        return page(request, "Invalid session", "<p class='error'>Invalid session</p>", status=403)
    site = request.app[SITE]
    url, email = str(form.get("profile_url", "")).strip(), str(form.get("email", "")).strip()
    found = site.optouts.find(url)
    if found is None or not valid_email(email):
        error = "Please enter the URL of a Radaris profile." if found is None else "Please enter a valid e-mail."
        return page(request, "Remove my information", optout_form(expected, url, email, error), status=400)
    site.optouts.submit(*found)
    body = (
        "<h1>Thank you</h1><p class='notice'>Your request has been received. "
        f"The profile will be removed from our search results within {PROCESSING_DAYS} days.</p>"
    )
    return page(request, "Request received", body)


def make_app(options: dict) -> web.Application:
    app, site = make_site_app(SITE_ID, options, SHARE, DEFAULTS, minute_limit(refuse), flat=True)
    app[INDEX_KEY] = {radaris_id(p): p for p in site.people}
    app[SESSIONS_KEY] = {}
    app.router.add_get("/", home)
    app.router.add_post("/ng/search", search_post)
    app.router.add_get("/people/{tail:.+}", results)
    app.router.add_get("/p/{first}/{last}/{rid}", profile)
    app.router.add_get("/privacy", privacy)
    app.router.add_get("/control/privacy", moved)
    app.router.add_get(OPT_OUT_PATH, optout)
    app.router.add_post(OPT_OUT_PATH, optout_post)
    install(app, site, listing_url)
    return app


SERVICE = register(
    Service(SITE_ID, 8404, make_app, "Radaris-like broker: CSRF search form, sectioned profiles, 403 rate limit")
)
