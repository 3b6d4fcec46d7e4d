"""A ThatsThem-like broker (``thatsthem``, port 8405): direct lookups that show whole records at once.

    GET /name/First-Last[?page=N]                  records by name or alias, 10 a page, a Next link
    GET /name/First-Last/City-ST[-ZIP][?page=N]    ... with one address in that place (a ZIP narrows to its area)
    GET /phone/555-555-0123                        records holding that phone
    GET /email/{address}                           records holding that e-mail
    GET /person/First-Last/{10 hex}                one record (``listing_url``), with relatives
    GET /optout                                    how to opt out: only by e-mail to privacy@thatsthem.test

Formats of its own: names in last-first order ("Smith, John M."), addresses in USPS capitals
("1234 OAK AVE", "SPRINGFIELD, IL 62701"), phones dashed with "Mobile" for wireless lines, and the age as
"Born October 1958 (67 years old)" from the birth month and year at the population's REFERENCE_DATE.
Lookups with no (or no more) records answer 200 "No results found".

Protection is what the real site moved to, a plain CDN 403: over ``rate_limit_per_minute`` requests a
minute from one client IP (default 30; 0 = off), ``403 Access denied`` as text/plain with ``Retry-After``
(seconds until the oldest counted request leaves the window; refused requests are not counted).

The script-injection listing: one record's name (``INJECTED_PERSON``) ends in an HTML/JS payload, escaped
as text in the page, as a broker that republishes what someone typed (a self-edited listing, another source)
serves it. The scraped name carries the payload intact; whatever shows it (the scans page) must keep it inert.
The person still matches: the payload's words fall between the first and the last name.

Opt-out by e-mail only: ``PRIVACY_ADDRESS`` is registered with ``sandbox.mailroom``, so a letter sent
through the sandbox's mail services reaches ``receive``: each record URL of this site found in its plain
text (``.../person/First-Last/{10 hex}``, absolute or a path) counts a submission for that record, which is
removed ``optout_processing_seconds`` (default 2 days) later: "Record not found" (404) as for an unknown
id, and lookups leave it out. A letter naming no record is counted as ``unmatched`` (``/__optouts``) and
otherwise ignored, as a busy privacy desk does.

Layout v2: one ``table.tt-results`` whose ``tbody.tt-rec[data-url]`` hold th/td rows (Name, Born, Address,
Phones, E-mails, Also known as, Previous) instead of ``.ThatsThem-record`` cards; same values.

Three more redesigns (``thatsthem_layouts.py``), on which self-healing extraction is measured, keep every v1
value in its v1 text (the name, "October 1958 (67 years old)", the two USPS address lines, phones with their
line type, e-mails, aliases, previous addresses, relatives), the record URLs in the same order, v1's
``a.next-page`` link, "No results found", "Record not found" and the defences: ``structural`` lists the
records in ``table.people-list`` (one row each, th column headers, the link in the name cell) and shows a
record page as one ``dl.record-facts`` (labels "Date of birth", "AKA", "Phones", "Current address",
"Relatives", "Emails", "Past addresses", in that order; empty ones left out); ``jsonld`` has an <h1>, a bare
``<ul>`` of links or a "Born ..." line, the data in schema.org JSON-LD (an ItemList of ListItem url + Person
with "Born ..." as description; a Person with alternateName, telephone, email, address as PostalAddress in
capitals, relatedTo), every "<" in it a JSON unicode escape (the injected name cannot close the script);
``partial`` is v1 with about half the class names renamed (``ThatsThem-record-name``, ``-emails``,
``-aliases``, ``-previous``, ``label``), a header and a details wrapper, the results in a section, and
"Phone Numbers" reworded "Phones".
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from html import escape
from urllib.parse import quote, urlencode

from aiohttp import web

from sandbox import mailroom
from sandbox.brokers import thatsthem_layouts as layouts
from sandbox.brokers.common import (
    dashed,
    digest,
    html_page,
    is_listed,
    month_year,
    parse_name,
    parse_place,
)
from sandbox.brokers.control import SITE, Site, make_site_app, minute_limit
from sandbox.brokers.optouts import install
from sandbox.brokers.thatsthem_layouts import Postal, Record
from sandbox.population import Address, Person
from sandbox.server import Service, register

SITE_ID = "thatsthem"
BRAND = "ThatsThem"
SHARE = 0.72
PAGE_SIZE = 10
PROCESSING_DAYS = 2
DEFAULTS = {"rate_limit_per_minute": 30, "optout_processing_seconds": PROCESSING_DAYS * 86400.0}
PRIVACY_ADDRESS = "privacy@thatsthem.test"
RECORD_URL = re.compile(r"/person/[^\s/]+/([0-9a-f]{10})(?![0-9a-zA-Z])")
RECORDS = web.AppKey("thatsthem_records", dict)  # record id -> person
PHONE_TYPES = {"Wireless": "Mobile"}
REDESIGNS = ("structural", "jsonld", "partial")  # thatsthem_layouts.py
INJECTED_PERSON = "P001509"  # Paul Edward Thomas of the default population (Reno, NV): no namesake anywhere
INJECTION_PAYLOAD = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def record_id(person: Person) -> str:
    return f"{digest(SITE_ID, 'record', person.id) % 16**10:010x}"


def listing_url(person: Person) -> str | None:
    if not is_listed(SITE_ID, person, SHARE):
        return None
    return f"/person/{person.first_name}-{person.last_name}/{record_id(person)}"


def display_name(person: Person) -> str:
    middle = f" {person.middle_name[0]}." if person.middle_name else ""
    name = f"{person.last_name}, {person.first_name}{middle}"
    return f"{name} {INJECTION_PAYLOAD}" if person.id == INJECTED_PERSON else name


def born(person: Person) -> str:
    return f"{month_year(person.birth_month, person.birth_year)} ({person.age} years old)"


def address_lines(address: Address) -> tuple[str, str]:
    return address.street.upper(), f"{address.city.upper()}, {address.state} {address.zip}"


def postal(address: Address) -> Postal:
    return Postal(address.street.upper(), address.city.upper(), address.state, address.zip)


def record_data(person: Person, relatives: list[str] | None = None) -> Record:
    """The record's values in v1's text formats, for the redesigns."""
    return Record(
        url=listing_url(person),
        name=display_name(person),
        born=born(person),
        address=postal(person.current),
        phones=[(dashed(p.number), PHONE_TYPES.get(p.type, p.type)) for p in person.phones],
        emails=list(person.emails),
        aliases=list(person.aliases),
        previous=[postal(a) for a in person.addresses[1:]],
        relatives=relatives,
    )


def redesigned_records(request: web.Request, records: list[Record]) -> str:
    """A lookup page's records in the current redesign (structural, jsonld or partial)."""
    layout = request.app[SITE].layout
    if layout == "jsonld":
        return layouts.jsonld_results(records, str(request.url.origin()))
    return layouts.structural_results(records) if layout == "structural" else layouts.partial_results(records)


def redesigned_record(layout: str, record: Record) -> str:
    """A record page's record in the current redesign."""
    renders = {"jsonld": layouts.jsonld_record, "structural": layouts.structural_record}
    return renders.get(layout, layouts.partial_record)(record)


def fields(person: Person) -> list[tuple[str, str, str]]:
    """(key, label, HTML) of one record, in display order; empty fields are left out."""
    phones = [
        f"<a href='/phone/{dashed(p.number)}'>{dashed(p.number)}</a> <small>{PHONE_TYPES.get(p.type, p.type)}</small>"
        for p in person.phones
    ]
    emails = [f"<a href='/email/{quote(e, safe='@')}'>{escape(e)}</a>" for e in person.emails]
    previous = ["<br>".join(map(escape, address_lines(a))) for a in person.addresses[1:]]
    entries = [
        ("address", "Address", "<br>".join(map(escape, address_lines(person.current)))),
        ("phones", "Phone Numbers", "<br>".join(phones)),
        ("emails", "Email Addresses", "<br>".join(emails)),
        ("aliases", "Also known as", ", ".join(map(escape, person.aliases))),
        ("previous", "Previous Addresses", "<hr>".join(previous)),
    ]
    return [entry for entry in entries if entry[2]]


def record(site: Site, person: Person, extra: str = "") -> str:
    url, name = listing_url(person), escape(display_name(person))
    if site.v2:
        rows = [
            f"<tr><th>Name</th><td><a href='{url}'>{name}</a></td></tr>",
            f"<tr><th>Born</th><td>{born(person)}</td></tr>",
        ]
        rows += [f"<tr class='row-{key}'><th>{label}</th><td>{value}</td></tr>" for key, label, value in fields(person)]
        return f"<tbody class='tt-rec' data-url='{url}'>{''.join(rows)}{extra}</tbody>"
    parts = "".join(
        f"<div class='ThatsThem-record-{key}'><span class='label'>{label}:</span> {value}</div>"
        for key, label, value in fields(person)
    )
    return (
        f"<div class='ThatsThem-record' data-record-url='{url}'><h2 class='ThatsThem-record-name'>"
        f"<a href='{url}'>{name}</a></h2><div class='ThatsThem-record-age'>Born {born(person)}</div>"
        f"{parts}{extra}</div>"
    )


def records_html(site: Site, people: list[Person], extra: str = "") -> str:
    inner = "".join(record(site, p, extra) for p in people)
    if site.v2:
        return f"<div class='tt-wrap'><div class='tt-scroll'><table class='tt-results'>{inner}</table></div></div>"
    return f"<div class='ThatsThem-results'>{inner}</div>"


def page(title: str, body: str, status: int = 200) -> web.Response:
    return html_page(BRAND, f"{title} | {BRAND}", body, status=status)


def lookup_page(request: web.Request, title: str, found: list[Person]) -> web.Response:
    site = request.app[SITE]
    try:
        number = max(1, int(request.query.get("page", "1")))
    except ValueError:
        return page(title, "<p class='error'>Invalid page.</p>", status=400)
    shown = found[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    if not shown:
        return page(title, f"<h1>{escape(title)}</h1><div class='no-results'>No results found</div>")
    if site.layout in REDESIGNS:
        records = redesigned_records(request, [record_data(p) for p in shown])
        body = f"<h1>{escape(title)}</h1><p>{len(found)} results</p>" + records
    else:
        body = f"<h1>{escape(title)}</h1><p class='results-count'>{len(found)} results</p>" + records_html(site, shown)
    if number * PAGE_SIZE < len(found):
        href = escape(f"{request.path}?{urlencode({'page': number + 1})}")
        body += f"<a class='next-page' rel='next' href='{href}'>Next</a>"
    return page(title, body)


async def by_name(request: web.Request) -> web.Response:
    site = request.app[SITE]
    name = parse_name(request.match_info["name"])
    if name is None:
        return page("Not found", "<h1>Not found</h1>", status=404)
    place = request.match_info.get("place", "")
    city, state, zip_code = parse_place(place.split("-"))
    found = site.search(*name, city=city, state=state, zip_code=zip_code)
    title = " ".join(request.match_info["name"].split("-")) + (f" in {' '.join(place.split('-'))}" if place else "")
    return lookup_page(request, title, found)


async def by_phone(request: web.Request) -> web.Response:
    digits = "".join(c for c in request.match_info["phone"] if c.isdigit())
    site = request.app[SITE]
    return lookup_page(request, dashed(digits), site.visible(site.by_phone.get(digits, [])))


async def by_email(request: web.Request) -> web.Response:
    address = request.match_info["address"]
    site = request.app[SITE]
    return lookup_page(request, address, site.visible(site.by_email.get(address.casefold(), [])))


async def person_page(request: web.Request) -> web.Response:
    site = request.app[SITE]
    person = request.app[RECORDS].get(request.match_info["rid"])
    if person is None or site.optouts.hidden(person):
        return page("Not found", "<h1>Record not found</h1>", status=404)
    if request.path != listing_url(person):
        raise web.HTTPMovedPermanently(listing_url(person))
    relatives = [r for r in map(site.population.get, person.relatives) if r]
    if site.layout in REDESIGNS:
        record = record_data(person, [f"{r.first_name} {r.last_name}" for r in relatives])
        heading = f"<h1>{escape(display_name(person))}</h1>"
        return page(display_name(person), heading + redesigned_record(site.layout, record))
    names = ", ".join(escape(f"{r.first_name} {r.last_name}") for r in relatives)
    extra = ""
    if names and site.v2:
        extra = f"<tr class='row-relatives'><th>Possible relatives</th><td>{names}</td></tr>"
    elif names:
        extra = f"<div class='ThatsThem-record-relatives'><span class='label'>Possible relatives:</span> {names}</div>"
    return page(display_name(person), f"<h1>{escape(display_name(person))}</h1>" + records_html(site, [person], extra))


async def home(_request: web.Request) -> web.Response:
    return page(
        "Free people search",
        "<h1>Free people search</h1><p>Look up /name/First-Last/City-ST-ZIP, "
        "/phone/xxx-xxx-xxxx or /email/address.</p>",
    )


async def optout(_request: web.Request) -> web.Response:
    return page(
        "Opt out",
        "<h1>Opt out</h1><p class='optout-info'>We take deletion requests only by e-mail. Write to "
        f"<a href='mailto:{PRIVACY_ADDRESS}'>{PRIVACY_ADDRESS}</a> and include the address (URL) of each "
        f"record you want removed. Requests are processed within {PROCESSING_DAYS} business days.</p>",
    )


def plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",)) if message.is_multipart() else message
    return part.get_content() if part is not None else ""


def receiver(site: Site, records: dict):
    """The privacy inbox: a submission per record URL in the letter, else one more ``unmatched``."""

    def receive(message: EmailMessage) -> None:
        named = [rid for rid in dict.fromkeys(RECORD_URL.findall(plain_text(message))) if rid in records]
        if not named:
            site.optouts.count_unmatched()
        for rid in named:  # a letter naming a record twice is one request for it
            site.optouts.submit(listing_url(records[rid]), records[rid])

    return receive


def forbidden(_request: web.Request, _site: Site, wait: int) -> web.Response:
    return web.Response(status=403, text="Access denied", headers={"Retry-After": str(wait), "Server": "cdn"})


def make_app(options: dict) -> web.Application:
    app, site = make_site_app(SITE_ID, options, SHARE, DEFAULTS, minute_limit(forbidden, "forbidden"))
    app[RECORDS] = {record_id(p): p for p in site.people}
    install(app, site, listing_url)
    mailroom.register_recipient(PRIVACY_ADDRESS, receiver(site, app[RECORDS]))
    routes = app.router
    routes.add_get("/optout", optout)
    routes.add_get("/", home)
    routes.add_get("/name/{name}", by_name)
    routes.add_get("/name/{name}/{place}", by_name)
    routes.add_get(r"/phone/{phone:[\d-]{10,14}}", by_phone)
    routes.add_get("/email/{address}", by_email)
    routes.add_get(r"/person/{name}/{rid:[0-9a-f]{10}}", person_page)
    return app


SERVICE = register(Service(SITE_ID, 8405, make_app, "ThatsThem-like broker (direct lookups, 403 rate limit)"))
