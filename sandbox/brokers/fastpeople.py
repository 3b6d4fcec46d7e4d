"""A FastPeopleSearch-like broker (``fastpeople``, port 8401): server-rendered result lists and detail pages.

    GET /name/{first-last}                      search by name or alias, 10 cards a page
    GET /name/{first-last}_{city-st} or _{st}   ... with one address in that city and state / state
    GET /name/{slug}/page/{n}                   later pages; past the last one a 200 "We could not find the page"
    GET /{xxx-xxx-xxxx}                         reverse phone lookup (the same cards)
    GET /{first-last}_id_G{19 digits}           the detail page (``listing_url``); another name part -> 301
    GET /removal                                the opt-out form: listing URL, e-mail, hidden CSRF token
    POST /removal                               -> "Check your e-mail" and a confirmation e-mail
    GET /removal/confirm/{token}                the e-mailed link: confirms the removal

Quirks copied from the real site, so spiders meet them here first:

- values are loose text after label headings (``<h3>Age:</h3> 34``), addresses keep USPS abbreviations
  ("Oak Ave") and print "Springfield IL 62701" without a comma; the current address says "Since April 2020";
- e-mails are Cloudflare-obfuscated: ``<a class="__cf_email__" data-cfemail="HEX">``, the first byte of HEX
  is the XOR key of the rest (``common.cf_decode``);
- JSON-LD: list pages hold Person blocks with ``homeLocation``; the detail page's Person block spells it
  ``HomeLocation`` and its FAQPage block ends in ``};`` so a strict ``json.loads`` rejects it;
- over ``rate_limit_per_minute`` requests a minute from one client IP (default 60; 0 = off), a
  "Rate Limit Exceeded" page with status 200, as the real site serves it.

Opt-out, as the real site's: the form's hidden ``csrf_token`` is bound to the ``fps_session`` cookie the
form page sets (a POST without both, or with another session's token: 403 "Your session has expired");
the URL must be one of the site's detail pages (400 otherwise). Each such POST is counted for that listing
(``/__optouts``) and mails a link ``http://{host}/removal/confirm/{token}`` from removals@fastpeople.test
to the address given (``sandbox.mailroom``: the sandbox's Maildir). The link is valid
``optout_link_seconds`` (default 86400; later: an "expired" page, nothing confirmed); opening it confirms,
and ``optout_processing_seconds`` (default 3 days) later the detail page answers as for an unknown id
(the 200 "We could not find the page") and searches leave the person out.

Layout v2 (``POST /_sandbox/config {"layout": "v2"}``) is a redesign: hashed class names, two wrappers
around each card, ``<dl>`` facts instead of loose labels, ``data-href`` instead of ``data-link``, detail
sections under ``data-section`` instead of ids and with phones and e-mails first. The JSON-LD does not
change (as on real redesigns), and neither do the values.

Three more redesigns (``fastpeople_layouts``), on which self-healing extraction is measured. Each carries v1's
data: the same results in the same order with the same detail URLs, v1's text formats (phones "(217) 555-0123",
address lines "1234 Oak Ave" / "Springfield IL 62701", "Since April 2020"), v1's pagination markup, its
"could not find" pages, e-mails still behind Cloudflare's obfuscation in the markup, and the same defences.

- ``structural``: results in a table (``table.results-table``, one row per person, a ``<th>`` per column: Name,
  Age, Phones, Lives at, Lived in, AKA, Full name), the detail link on the name in the first cell; the detail
  page is ``h1.profile-name`` and one ``<dl class='profile-facts'>``, a ``<dd>`` per value, in a new order under
  reworded terms (Age, Phones, Emails, Current address, Possible relatives, AKA, Past addresses). The new front
  end dropped the JSON-LD blocks: the markup is the only source.
- ``jsonld``: minimal markup, the data in clean schema.org JSON-LD. Results: an ``<h1>``, a bare ``<ul>`` of
  ``<a href=detail>First Last</a>`` and an ItemList whose ListItems hold the detail ``url`` and a Person (name,
  givenName, familyName, "45 years old" as description, address: the current PostalAddress then past
  cities, alternateName, telephone). Detail: an ``<h1>``, one line "45 years old. Lives in Springfield, IL since
  April 2020." and a Person block (name, alternateName, telephone, contactPoint with the phone types, email in
  clear, address: PostalAddresses current first, relatedTo: Person name "First Last" and url when listed);
  no FAQ block and no defects.
- ``partial``: v1's markup with about half the names changed: cards keep ``people-list``, ``card`` and
  ``data-link`` but the heading classes are new and the facts sit in a wrapper; "Phone Numbers:" reads
  "Phones:". Detail pages keep ``h1.fullname``, ``#current_address_section``, ``#phone_number_section``,
  ``#email_section`` and ``.since``; the age heading, the box class and the alias, past address and relative
  ids are renamed, the sections sit in a wrapper, "Also Known As" reads "Aliases". The JSON-LD is v1's, defects
  included.
"""

from __future__ import annotations

import hmac
from html import escape

from aiohttp import web

from sandbox import mailroom
from sandbox.brokers import fastpeople_layouts as layouts
from sandbox.brokers.common import (
    cf_encode,
    dashed,
    digest,
    form_session,
    full_name,
    hashed,
    html_page,
    is_listed,
    ld_json,
    month_year,
    parse_name,
    parse_place,
    since_month,
    slug,
)
from sandbox.brokers.control import SITE, Site, make_site_app, minute_limit
from sandbox.brokers.optouts import install, valid_email
from sandbox.population import Address, Person
from sandbox.server import Service, register

SITE_ID = "fastpeople"
BRAND = "FastPeople Search"
SHARE = 0.8
PAGE_SIZE = 10
PROCESSING_DAYS = 3
DEFAULTS = {
    "rate_limit_per_minute": 60,
    "optout_processing_seconds": PROCESSING_DAYS * 86400.0,
    "optout_link_seconds": 86400.0,
}
DETAILS = web.AppKey("fastpeople_details", dict)  # detail id -> person
SESSIONS = web.AppKey("fastpeople_sessions", dict)  # session cookie -> CSRF token
SESSION_COOKIE = "fps_session"
SENDER = "FastPeople Search <removals@fastpeople.test>"


def detail_id(person: Person) -> str:
    """G and 19 digits, stable per person."""
    return f"G{10**18 + digest(SITE_ID, 'id', person.id) % (9 * 10**18)}"


def listing_url(person: Person) -> str | None:
    if not is_listed(SITE_ID, person, SHARE):
        return None
    return f"/{slug(person.first_name)}-{slug(person.last_name)}_id_{detail_id(person)}"


def street_city(address: Address) -> tuple[str, str]:
    return address.street, f"{address.city} {address.state} {address.zip}"


def cls(site: Site, name: str) -> str:
    return hashed(name) if site.v2 else name


def page(site: Site, title: str, body: str, head: str = "", status: int = 200) -> web.Response:
    return html_page(BRAND, title, f"<div class='{cls(site, 'container')}'>{body}</div>", head=head, status=status)


def not_found_page(site: Site) -> web.Response:
    """Past the last page the real site answers 200 with this text, not a 404."""
    return page(
        site,
        "Page not found",
        "<h1>We could not find the page you were looking for.</h1><p>Please check the URL or start a new search.</p>",
    )


def person_ld(person: Person, home_key: str) -> dict:
    current = person.current
    address = {
        "@type": "PostalAddress",
        "streetAddress": current.street,
        "addressLocality": current.city,
        "addressRegion": current.state,
        "postalCode": current.zip,
    }
    return {
        "@context": "https://schema.org",
        "@type": "Person",
        "name": full_name(person),
        "givenName": person.first_name,
        "familyName": person.last_name,
        "url": listing_url(person),
        home_key: {"@type": "Place", "address": address},
        "additionalName": list(person.aliases),
        "telephone": [p.formatted() for p in person.phones],
    }


def card_facts(person: Person) -> list[tuple[str, str]]:
    """(label, value) of what a card shows, in v1's text formats; empty values left out."""
    facts = [
        ("Age", str(person.age)),
        ("Full Name", full_name(person)),
        ("Current Address", " ".join(street_city(person.current))),
        ("Past Addresses", "; ".join(f"{a.city} {a.state}" for a in person.addresses[1:])),
        ("AKA", ", ".join(person.aliases)),
        ("Phone Numbers", ", ".join(p.formatted() for p in person.phones)),
    ]
    return [(label, value) for label, value in facts if value]


def summary(person: Person) -> layouts.Summary:
    """A result's values for the redesigns, as v1's card writes them."""
    current = person.current
    return layouts.Summary(
        link=listing_url(person),
        name=f"{person.first_name} {person.last_name}",
        place=f"{current.city}, {current.state}",
        facts=card_facts(person),
        full_name=full_name(person),
        age=person.age,
        given_name=person.first_name,
        family_name=person.last_name,
        current=current,
        past=person.addresses[1:],
        aliases=list(person.aliases),
        phones=[p.formatted() for p in person.phones],
    )


def card(site: Site, person: Person) -> str:
    link, current = listing_url(person), person.current
    facts = card_facts(person)
    name, place = escape(f"{person.first_name} {person.last_name}"), escape(f"{current.city}, {current.state}")
    if site.v2:
        items = "".join(f"<dt>{label}</dt><dd>{escape(value)}</dd>" for label, value in facts)
        return (
            f"<div class='{hashed('wrap')}'><div class='{hashed('card')}' data-href='{link}'>"
            f"<div class='{hashed('head')}'><a href='{link}'>{name}</a> <span>{place}</span></div>"
            f"<dl class='{hashed('facts')}'>{items}</dl></div></div>"
        )
    loose = "".join(f"<h3>{label}:</h3> {escape(value)}<br>" for label, value in facts)
    return (
        f"<div class='card' data-link='{link}'><h2 class='card-title'><span class='larger'>{name}</span><br>"
        f"<span class='grey'>{place}</span></h2>{loose}"
        f"<a class='btn btn-primary link-to-details' href='{link}'>View Free Details</a></div>"
    )


def result_list(site: Site, title: str, people: list[Person], number: int, base: str) -> web.Response:
    last_page = max(1, -(-len(people) // PAGE_SIZE))
    if number > last_page:
        return not_found_page(site)
    if not people:
        return page(site, title, f"<h1>We could not find any records for {escape(title)}.</h1>")
    shown = people[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    head = ld_json([person_ld(p, "homeLocation") for p in shown])
    if site.layout in layouts.LAYOUTS:
        heading, first = f"{len(people)} records for {title}", (number - 1) * PAGE_SIZE + 1
        body, head = layouts.results(site.layout, heading, [summary(p) for p in shown], first, head)
    else:
        body = f"<h1 class='{cls(site, 'search-results-header')}'>{len(people)} records for {escape(title)}</h1>"
        container = "section" if site.v2 else "div"
        cards = "".join(card(site, p) for p in shown)
        body += f"<{container} class='{cls(site, 'people-list')}'>{cards}</{container}>"
    links = ([f"<a class='{cls(site, 'prev')}' href='{base}/page/{number - 1}'>Previous</a>"] if number > 1 else []) + (
        [f"<a class='{cls(site, 'next')}' href='{base}/page/{number + 1}'>Next Page</a>"] if number < last_page else []
    )
    body += f"<nav class='{cls(site, 'pagination')}'>{' '.join(links)}</nav>"
    return page(site, f"{title} - {BRAND}", body, head=head)


async def search(request: web.Request) -> web.Response:
    site = request.app[SITE]
    raw = request.match_info["slug"]
    name_part, _, place_part = raw.partition("_")
    name = parse_name(name_part)
    if name is None:
        return page(site, "Not found", "<h1>We could not find the page you were looking for.</h1>", status=404)
    city, state, _ = parse_place(place_part.split("-"))
    number = int(request.match_info.get("n", "1"))
    found = site.search(*name, city=city, state=state)
    title = " ".join(w.title() for w in name_part.split("-"))
    if state:
        title += f" in {city.title() + ', ' if city else ''}{state}"
    return result_list(site, title, found, number, f"/name/{raw}")


async def phone_lookup(request: web.Request) -> web.Response:
    site = request.app[SITE]
    dashed = request.match_info["phone"]
    return result_list(site, dashed, site.visible(site.by_phone.get(dashed.replace("-", ""), [])), 1, f"/{dashed}")


def section(site: Site, key: str, v1_id: str, heading: str, content: str) -> str:
    if site.v2:
        return (
            f"<section class='{hashed('section')}' data-section='{key}'><div class='{hashed('inner')}'>"
            f"<h2>{heading}</h2>{content}</div></section>"
        )
    return f"<div class='detail-box' id='{v1_id}'><h2>{heading}</h2>{content}</div>"


def detail_sections(site: Site, person: Person) -> dict[str, str]:
    population = site.population
    current = person.current
    month, year = since_month(SITE_ID, person, current)
    street, city_line = street_city(current)
    emails = [
        f"<a href='/cdn-cgi/l/email-protection' class='__cf_email__' "
        f"data-cfemail='{cf_encode(e, digest(SITE_ID, 'cf', e) % 255 + 1)}'>[email&#160;protected]</a>"
        for e in person.emails
    ]
    relatives = []
    for relative in filter(None, map(population.get, person.relatives)):
        name = escape(f"{relative.first_name} {relative.last_name}")
        link = listing_url(relative)
        relatives.append(f"<a href='{link}'>{name}</a>" if link else f"<span>{name}</span>")
    phones = [f"<a href='/{dashed(p.number)}'>{p.formatted()}</a> <span>{p.type}</span>" for p in person.phones]
    since = f"<p class='{cls(site, 'since')}'>Since {month_year(month, year)}</p>"
    items = {
        "aliases": ("aka-links", "Also Known As", [escape(a) for a in person.aliases]),
        "current": ("current_address_section", "Current Address", [f"{escape(street)}<br>{escape(city_line)}{since}"]),
        "previous": (
            "previous-address-links",
            "Previous Addresses",
            [f"{escape(a.street)}<br>{escape(street_city(a)[1])}" for a in person.addresses[1:]],
        ),
        "phones": ("phone_number_section", "Phone Numbers", phones),
        "emails": ("email_section", "Email Addresses", emails),
        "relatives": ("relative-links", "Relatives", relatives),
    }
    outer, tag = ("div", "div") if site.v2 else ("ul", "li")
    return {
        key: section(site, key, v1_id, heading, f"<{outer}>{''.join(f'<{tag}>{e}</{tag}>' for e in entries)}</{outer}>")
        for key, (v1_id, heading, entries) in items.items()
        if entries
    }


def profile(site: Site, person: Person) -> layouts.Profile:
    """A detail page's values for the redesigns, as v1 writes them."""
    month, year = since_month(SITE_ID, person, person.current)
    relatives = [
        (f"{r.first_name} {r.last_name}", listing_url(r))
        for r in filter(None, map(site.population.get, person.relatives))
    ]
    return layouts.Profile(
        link=listing_url(person),
        full_name=full_name(person),
        given_name=person.first_name,
        family_name=person.last_name,
        age=person.age,
        since=month_year(month, year),
        addresses=list(person.addresses),
        lines=[street_city(a) for a in person.addresses],
        aliases=list(person.aliases),
        phones=[(p.formatted(), f"/{dashed(p.number)}", p.type) for p in person.phones],
        emails=[(e, cf_encode(e, digest(SITE_ID, "cf", e) % 255 + 1)) for e in person.emails],
        relatives=relatives,
    )


def faq_ld(person: Person) -> dict:
    name = f"{person.first_name} {person.last_name}"
    answers = [
        (f"How old is {name}?", f"{name} is {person.age} years old."),
        (f"Where does {name} live?", f"{name} lives in {person.current.city}, {person.current.state}."),
    ]
    return {
        "@context": "https://schema.org",
        "@type": "FAQPage",
        "mainEntity": [
            {"@type": "Question", "name": q, "acceptedAnswer": {"@type": "Answer", "text": a}} for q, a in answers
        ],
    }


async def detail(request: web.Request) -> web.Response:
    site = request.app[SITE]
    person = request.app[DETAILS].get(request.match_info["gid"])
    if person is None or site.optouts.hidden(person):
        return not_found_page(site)
    canonical = listing_url(person)
    if request.path != canonical:
        raise web.HTTPMovedPermanently(canonical)
    ld = person_ld(person, "HomeLocation")  # the real-world defect: capital H on this page type
    ld["relatedTo"] = [
        {"@type": "Person", "name": full_name(r), **({"url": listing_url(r)} if listing_url(r) else {})}
        for r in filter(None, map(site.population.get, person.relatives))
    ]
    head = ld_json(ld) + ld_json(faq_ld(person), tail=";")
    if site.layout in layouts.LAYOUTS:
        body, head = layouts.detail(site.layout, profile(site, person), head)
    else:
        sections = detail_sections(site, person)
        order = ["phones", "emails", "current", "previous", "aliases", "relatives"] if site.v2 else list(sections)
        header = (
            f"<h1 class='{cls(site, 'fullname')}'>{escape(full_name(person))}</h1>"
            f"<h2 class='{cls(site, 'age')}'>Age:</h2> {person.age}"
        )
        body = header + "".join(sections[key] for key in order if key in sections)
    return page(site, f"{full_name(person)}, Age {person.age} - {BRAND}", body, head=head)


async def home(request: web.Request) -> web.Response:
    return page(
        request.app[SITE],
        BRAND,
        "<h1>Find people by name, phone or address</h1><p>Search: /name/first-last or /name/first-last_city-st</p>",
    )


# ---- opt-out -------------------------------------------------------------------------------------------


def removal_form(token: str, url: str = "", email: str = "") -> str:
    return (
        "<h1>Remove my record</h1><p>Paste the address of your record's page and an e-mail address. "
        "We will send you a link to confirm the removal.</p>"
        "<form id='removal' method='post' action='/removal'>"
        f"<input type='hidden' name='csrf_token' value='{token}'>"
        f"<label>Record URL <input name='url' value='{escape(url)}' placeholder='https://...'></label>"
        f"<label>E-mail <input name='email' type='email' value='{escape(email)}'></label>"
        "<button type='submit'>Remove my record</button></form>"
    )


async def removal(request: web.Request) -> web.Response:
    session, token, fresh = form_session(request.app[SESSIONS], request.cookies.get(SESSION_COOKIE, ""))
    response = page(request.app[SITE], f"Remove my record - {BRAND}", removal_form(token))
    if fresh:
        response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True, samesite="Lax")
    return response


def valid_for(site: Site) -> str:
    seconds = site.config["optout_link_seconds"]
    return f"{seconds / 3600:g} hours" if seconds >= 3600 else f"{seconds:g} seconds"


async def removal_post(request: web.Request) -> web.Response:
    site = request.app[SITE]
    form = await request.post()
    expected = request.app[SESSIONS].get(request.cookies.get(SESSION_COOKIE, ""))
    token = str(form.get("csrf_token", ""))
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        body = "<h1>Your session has expired</h1><p class='error'>Please reload the removal page and try again.</p>"
        return page(site, "Session expired", body, status=403)
    url, email = str(form.get("url", "")).strip(), str(form.get("email", "")).strip()
    found = site.optouts.find(url)
    if found is None or not valid_email(email):
        reason = "That is not the address of a record on our site." if found is None else "Enter a valid e-mail."
        body = f"<p class='error'>{reason}</p>" + removal_form(expected, url, email)
        return page(site, f"Remove my record - {BRAND}", body, status=400)
    path, person = found
    site.optouts.submit(path, person, needs_confirmation=True)
    link = f"http://{request.host}/removal/confirm/{site.optouts.issue_token(path)}"
    mailroom.deliver(
        mailroom.compose(
            SENDER,
            email,
            "Confirm the removal of your record",
            f"Hello,\n\nWe received a request to remove a record from {BRAND}.\n"
            f"Open this link within {valid_for(site)} to confirm it:\n\n{link}\n\n"
            "If you did not ask for this, ignore this e-mail.\n",
        )
    )
    body = (
        "<h1>Check your e-mail</h1><p class='notice'>We sent a confirmation link to the address you gave. "
        f"The link is valid for {valid_for(site)}; your record is removed once you open it.</p>"
    )
    return page(site, f"Check your e-mail - {BRAND}", body)


CONFIRMATIONS = {
    "confirmed": (
        "Removal confirmed",
        "Your removal request has been confirmed. The record will be removed within 72 hours.",
    ),
    "already": ("Removal confirmed", "This removal request has already been confirmed."),
    "expired": ("Link expired", "This confirmation link has expired. Please submit a new removal request."),
    "unknown": ("Invalid link", "This confirmation link is not valid."),
}


async def removal_confirm(request: web.Request) -> web.Response:
    outcome = request.app[SITE].optouts.confirm(request.match_info["token"])
    title, text = CONFIRMATIONS[outcome]
    body = f"<h1>{title}</h1><p class='removal-{outcome}'>{text}</p>"
    return page(request.app[SITE], f"{title} - {BRAND}", body, status=404 if outcome == "unknown" else 200)


def rate_limited(_request: web.Request, site: Site, _wait: int) -> web.Response:
    return page(
        site,
        "Rate Limit Exceeded",
        "<h1>Rate Limit Exceeded</h1><p>You have made too many requests. Please wait a minute and try again.</p>",
    )


def make_app(options: dict) -> web.Application:
    app, site = make_site_app(SITE_ID, options, SHARE, DEFAULTS, minute_limit(rate_limited))
    app[DETAILS] = {detail_id(p): p for p in site.people}
    app[SESSIONS] = {}
    install(app, site, listing_url)
    routes = app.router
    routes.add_get("/removal", removal)
    routes.add_post("/removal", removal_post)
    routes.add_get("/removal/confirm/{token}", removal_confirm)
    routes.add_get("/", home)
    routes.add_get("/name/{slug}", search)
    routes.add_get(r"/name/{slug}/page/{n:[1-9]\d{0,5}}", search)
    routes.add_get(r"/{phone:\d{3}-\d{3}-\d{4}}", phone_lookup)
    routes.add_get(r"/{name:[a-z0-9-]+}_id_{gid:G\d{19}}", detail)
    return app


SERVICE = register(Service(SITE_ID, 8401, make_app, "FastPeopleSearch-like broker (rate-limit page, JSON-LD)"))
