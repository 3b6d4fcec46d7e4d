"""A plain server-rendered people directory: the framework's example site.

    GET /                                   search form
    GET /search?first=&last=&state=&page=N  10 results a page, "N records found", a Next link
    GET /person/<id>                        detail page: name, age, phones, e-mails, addresses, relatives

Every person of the population is listed. A search matches the name or an
alias; ``state`` keeps people with any address (current or past) in that state,
while each result shows the current city, as real directories do.
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from aiohttp import web

from sandbox.population import DEFAULT_SEED, DEFAULT_SIZE, Person, Population, default_population
from sandbox.server import Service, register

PAGE_SIZE = 10
POPULATION_KEY = web.AppKey("population", Population)


def listing_url(person: Person) -> str:
    """Ground truth: the path of this person's listing on the directory."""
    return f"/person/{person.id}"


def page(title: str, body: str, status: int = 200) -> web.Response:
    html = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title></head>"
        f"<body><header><a href='/'>People Directory</a></header><main>{body}</main></body></html>"
    )
    return web.Response(text=html, status=status, content_type="text/html")


async def home(_request: web.Request) -> web.Response:
    return page(
        "People Directory",
        "<form action='/search' method='get'><input name='first' placeholder='First name'>"
        "<input name='last' placeholder='Last name'><input name='state' placeholder='State'>"
        "<button type='submit'>Search</button></form>",
    )


def result_card(person: Person) -> str:
    home_address = person.current
    return (
        f"<div class='result' data-id='{person.id}'>"
        f"<a class='name' href='{listing_url(person)}'>{escape(person.full_name)}</a> "
        f"<span class='age'>Age {person.age}</span> "
        f"<span class='location'>{escape(home_address.city)}, {home_address.state}</span></div>"
    )


async def search(request: web.Request) -> web.Response:
    first, last = request.query.get("first", "").strip(), request.query.get("last", "").strip()
    state = request.query.get("state", "").strip() or None
    if not first or not last:
        return page("Search", "<p class='error'>Please enter a first and a last name.</p>", status=400)
    try:
        number = max(1, int(request.query.get("page", "1")))
    except ValueError:
        return page("Search", "<p class='error'>Invalid page number.</p>", status=400)
    found = request.app[POPULATION_KEY].search(first, last, state=state)
    shown = found[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    if not found:
        return page("Search", "<p class='empty'>No records found</p>")
    body = f"<p class='count'>{len(found)} records found</p>" + "".join(map(result_card, shown))
    if number * PAGE_SIZE < len(found):
        params = {"first": first, "last": last, **({"state": state} if state else {}), "page": number + 1}
        body += f"<a class='next' href='/search?{escape(urlencode(params))}'>Next</a>"
    return page(f"{first} {last}", body)


def _items(css_class: str, entries: list[str]) -> str:
    return f"<ul class='{css_class}'>{''.join(entries)}</ul>"


async def person_detail(request: web.Request) -> web.Response:
    population = request.app[POPULATION_KEY]
    person = population.get(request.match_info["person_id"])
    if person is None:
        return page("Not found", "<p class='error'>We could not find that person.</p>", status=404)
    relatives = [population.get(r) for r in person.relatives]
    body = (
        f"<h1 class='name'>{escape(person.full_name)}</h1><span class='age'>Age {person.age}</span>"
        "<h2>Phones</h2>"
        + _items("phones", [f"<li data-type='{p.type}'>{p.formatted()}</li>" for p in person.phones])
        + "<h2>E-mails</h2>"
        + _items("emails", [f"<li>{escape(e)}</li>" for e in person.emails])
        + "<h2>Addresses</h2>"
        + _items("addresses", [f"<li data-since='{a.since}'>{escape(a.line())}</li>" for a in person.addresses])
        + "<h2>Relatives</h2>"
        + _items("relatives", [f"<li><a href='{listing_url(r)}'>{escape(r.full_name)}</a></li>" for r in relatives])
    )
    return page(person.full_name, body)


def make_app(options: dict) -> web.Application:
    app = web.Application()
    app[POPULATION_KEY] = default_population(options.get("seed", DEFAULT_SEED), options.get("people", DEFAULT_SIZE))
    app.router.add_get("/", home)
    app.router.add_get("/search", search)
    app.router.add_get("/person/{person_id}", person_detail)
    return app


SERVICE = register(Service("directory", 8100, make_app, "people directory (example site)"))
