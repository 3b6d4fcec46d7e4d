"""A TruePeopleSearch-like broker (``truepeople``, port 8402): query-string search, opaque detail ids.

    GET /results?name=First+Last&citystatezip=City,+ST&page=N   10 cards a page, "N records found", Next Page
    GET /results?phoneno=(217)555-0123                          reverse phone lookup (links on detail pages)
    GET /find/person/{opaque id}                                the detail page (``listing_url``)
    GET /InternalCaptcha?returnUrl=...                          where bursts are sent
    GET/POST /removal                                           the opt-out form, behind a reCAPTCHA

``citystatezip`` takes "City, ST", "City ST", "ST" or a ZIP (a ZIP narrows to its 3-digit area). Cards
tease the age as a decade ("in their 40s"); the detail page has the exact one. About 3 % of the listed
people are marked "Deceased" (``is_deceased``). Names read "John M. Smith", streets are spelled out
("Oak Avenue"), phones carry type, "Primary", "Last reported Mon YYYY" and carrier.

Defences, in the order a request meets them (``/_sandbox/*`` and ``/health`` are exempt):

1. Interstitial (``interstitial``, default on). Without a valid ``cf_clearance`` cookie: 503 "Just a
   moment...". The cookie is bound to the client IP and User-Agent, as Cloudflare's is. The page shows its
   seed (``#challenge-form[data-seed]``) and an inline script sets ``cf_clearance=<seed>.<n>`` where
   ``n = 0; for c in seed: n = (n * 31 + ord(c)) % 1000003`` (``clearance_token``): a client without
   JavaScript can compute it. The 503 also sends the same value in ``Set-Cookie``, so a crawler that keeps
   cookies and retries 503s passes honestly on its second attempt.
2. Bursts: more than ``burst_limit`` requests (default 20; 0 = off) in ``burst_seconds`` (10) from one
   IP are redirected (302) to ``/InternalCaptcha?returnUrl=<path>``, a 200 page with a ``g-recaptcha``
   div. Redirected requests do not count, so a client that slows down gets in again.
3. ``rate_limit_per_minute`` (default 0 = off): over it, a 200 page "Your IP ... has been rate limited".

Opt-out: ``/removal`` asks for the record's URL and an e-mail under a reCAPTCHA widget
(``div.g-recaptcha`` and an empty ``g-recaptcha-response`` field, as Google's script leaves it until a
person solves it). A POST without a solved token answers 400 "Please complete the CAPTCHA" and is not
counted: nothing here can be solved by a program. A person's part is played through the sandbox:
``POST /_sandbox/optouts/submit {"url": ...}`` (the person solved it and submitted: counted), or
``POST /_sandbox/optouts/solve`` for a one-use token to put in ``g-recaptcha-response``. A counted
submission removes the listing ``optout_processing_seconds`` later (default 5 days): its detail page then
answers 404 "no longer available", as an unknown id does, and searches leave it out. The defences above
stand in front of ``/removal`` too.

Layout v2: results in a table (``tr.result-row[data-url]``), the detail values in
``.person-header[data-person-name|age|location]`` instead of ``#personDetails[data-fn|ln|age|city|state]``,
other class names and section order.

Three more redesigns (``truepeople_layouts``), on which self-healing extraction is measured. Each carries v1's
data: the same results in the same order with the same detail URLs, v1's text formats ("John M. Smith",
"in their 40s", "(217) 555-0123", "1234 Oak Avenue" / "Springfield, IL 62701", "Age 45", the Deceased mark),
the count's text "N records found for ...", v1's Next Page button, the 404 text and every defence above.

- ``structural``: the count in ``p.results-summary``, results in ``table.people-table`` (a row per person,
  ``<th>`` columns Name, Age, Location, Possible relatives, Previously; the detail link on the name in the first
  cell). The detail page is ``h1.profile-title`` and ``table.profile-table``: label/value rows in a new order
  under reworded labels (Age:, Phones, Current address, Emails, Relatives, AKA, Past addresses); no data-*
  attributes and no ``itemprop`` microdata.
- ``jsonld``: minimal markup, the data in schema.org JSON-LD. Results: the count as an ``<h1>``, a bare ``<ul>`` of
  ``<a href=detail>John M. Smith</a>`` ("(Deceased)" after the link) and an ItemList whose ListItems hold the
  detail ``url`` and a Person (name, "in their 40s" as description, address: the current city then the past
  ones, relatedTo names). Detail: an ``<h1>``, "Age 45" and "Deceased" lines, and a Person block (name,
  givenName, additionalName, familyName, alternateName, telephone, contactPoint with each phone's type,
  "Primary", "Last reported" and carrier, email, address: PostalAddresses current first, relatedTo: Person
  name and url when listed). The move-in years are not in it (schema.org has no place for them).
- ``partial``: v1's markup with about half the names changed: cards keep ``card-summary`` and
  ``data-detail-link`` but the name's and labels' classes are new, the facts sit in a wrapper, "Used to live
  in" reads "Past cities". Detail pages keep ``#personDetails`` with its data-* attributes, ``span.age``,
  ``itemprop=telephone``, ``data-link-to-more`` and the ``section`` class of the current address, phones and
  previous addresses; the name's class, the phone rows' classes and the alias, e-mail and relative sections'
  class are renamed, the sections sit in a wrapper, "Also Seen As" reads "Also Known As".
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote, urlencode

from aiohttp import web

from sandbox.brokers import truepeople_layouts as layouts
from sandbox.brokers.common import (
    base_n,
    decade,
    digest,
    html_page,
    is_listed,
    long_street,
    month_year,
    parse_name,
    parse_place,
    reported_month,
)
from sandbox.brokers.control import SITE, Site, client_ip, make_site_app, minute_limit
from sandbox.brokers.optouts import install, valid_email
from sandbox.population import Address, Person
from sandbox.server import Service, register

SITE_ID = "truepeople"
BRAND = "TruePeople Search"
SHARE = 0.75
PAGE_SIZE = 10
PROCESSING_DAYS = 5
DEFAULTS = {
    "rate_limit_per_minute": 0,
    "burst_limit": 20,
    "burst_seconds": 10.0,
    "interstitial": True,
    "optout_processing_seconds": PROCESSING_DAYS * 86400.0,
}
SITE_KEY = "6LcSandboxTruePeopleKey"
DETAILS = web.AppKey("truepeople_details", dict)  # opaque id -> person
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
CHALLENGE_SCRIPT = (  # clearance_token in JavaScript, then a reload
    '(function(){var s="SEED",n=0;for(var i=0;i<s.length;i++){n=(n*31+s.charCodeAt(i))%1000003;}'
    'document.cookie="cf_clearance="+s+"."+n+"; path=/";setTimeout(function(){location.reload();},1500);})();'
)


def opaque_id(person: Person) -> str:
    return "px" + base_n(digest(SITE_ID, "opaque", person.id), ALPHABET)


def listing_url(person: Person) -> str | None:
    return f"/find/person/{opaque_id(person)}" if is_listed(SITE_ID, person, SHARE) else None


def is_deceased(person: Person) -> bool:
    return digest(SITE_ID, "deceased", person.id) % 100 < 3


def clearance_token(seed: str) -> str:
    """What the interstitial's script computes (and what its Set-Cookie carries)."""
    n = 0
    for char in seed:
        n = (n * 31 + ord(char)) % 1000003
    return f"{seed}.{n}"


def challenge_seed(site: Site, request: web.Request) -> str:
    agent = request.headers.get("User-Agent", "")
    return f"{digest(SITE_ID, 'challenge', site.population.seed, client_ip(request), agent):016x}"


def city_line(address: Address) -> str:
    return f"{address.city}, {address.state} {address.zip}"


def page(title: str, body: str, status: int = 200, head: str = "") -> web.Response:
    return html_page(BRAND, title, body, status=status, head=head)


def rate_limited(request: web.Request, _site: Site, _wait: int) -> web.Response:
    return page(
        "Rate limited",
        f"<h1>Your IP {escape(client_ip(request))} has been rate limited.</h1><p>Please try again later.</p>",
    )


per_minute = minute_limit(rate_limited)


async def gate(request: web.Request, site: Site) -> web.StreamResponse | None:
    config = site.config
    if config["interstitial"]:
        token = clearance_token(challenge_seed(site, request))
        if request.cookies.get("cf_clearance") != token:
            site.counters["interstitial"] += 1
            seed = token.partition(".")[0]
            body = (
                "<h1>Just a moment...</h1><p>Checking if the site connection is secure.</p>"
                f"<div id='challenge-form' data-seed='{seed}'></div>"
                "<noscript>Enable JavaScript and cookies to continue</noscript>"
                f"<script>{CHALLENGE_SCRIPT.replace('SEED', seed)}</script>"
            )
            response = page("Just a moment...", body, status=503)
            response.headers.update({"Server": "cloudflare", "cf-mitigated": "challenge", "Cache-Control": "no-store"})
            response.set_cookie("cf_clearance", token, path="/", httponly=True)
            return response
    if request.path == "/InternalCaptcha":
        return None
    if site.admit("burst", request, config["burst_limit"], config["burst_seconds"]) is not None:
        site.counters["captcha"] += 1
        location = f"/InternalCaptcha?{urlencode({'returnUrl': request.path_qs})}"
        return web.Response(status=302, headers={"Location": location}, text="Redirecting")
    return await per_minute(request, site)


async def captcha(request: web.Request) -> web.Response:
    back = escape(request.query.get("returnUrl", "/"))
    return page(
        "Captcha",
        "<h1>Please verify you are a human</h1>"
        "<form method='post' action='/InternalCaptcha'>"
        f"<input type='hidden' name='returnUrl' value='{back}'>"
        f"<div class='g-recaptcha' data-sitekey='{SITE_KEY}'></div>"
        "<button type='submit'>Continue</button></form>",
    )


def summary(site: Site, person: Person) -> list[tuple[str, str, str]]:
    """(key, label, value) of a result: what cards and table rows show."""
    relatives = [r for r in map(site.population.get, person.relatives) if r]
    return [
        ("age", "Age", decade(person.age)),
        ("lives", "Lives in", f"{person.current.city}, {person.current.state}"),
        ("used", "Used to live in", ", ".join(dict.fromkeys(f"{a.city} {a.state}" for a in person.addresses[1:]))),
        ("related", "Related to", ", ".join(f"{r.first_name} {r.last_name}" for r in relatives)),
    ]


def result_summary(site: Site, person: Person) -> layouts.Summary:
    """A result's values for the redesigns, as v1's card writes them."""
    relatives = [r for r in map(site.population.get, person.relatives) if r]
    past = dict.fromkeys((a.city, a.state) for a in person.addresses[1:])
    return layouts.Summary(
        link=listing_url(person),
        name=person.full_name,
        deceased=is_deceased(person),
        facts=summary(site, person),
        cities=[(person.current.city, person.current.state), *past],
        relatives=[f"{r.first_name} {r.last_name}" for r in relatives],
    )


def results_html(site: Site, people: list[Person]) -> str:
    if site.v2:
        head = "".join(f"<th>{label}</th>" for label in ["Name", "Age", "Lives in", "Used to live in", "Related to"])
        rows = []
        for person in people:
            link, name = listing_url(person), escape(person.full_name)
            badge = " <em class='tag-deceased'>Deceased</em>" if is_deceased(person) else ""
            cells = "".join(f"<td class='col-{key}'>{escape(value)}</td>" for key, _, value in summary(site, person))
            rows.append(
                f"<tr class='result-row' data-url='{link}'><td class='col-name'>"
                f"<a href='{link}'>{name}</a>{badge}</td>{cells}</tr>"
            )
        return (
            f"<div class='results-wrap'><table class='result-table'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>"
        )
    cards = []
    for person in people:
        link = listing_url(person)
        badge = "<span class='deceased'>Deceased</span>" if is_deceased(person) else ""
        facts = "".join(
            f"<div><span class='content-label'>{label} </span><span class='content-value'>{escape(value)}</span></div>"
            for _, label, value in summary(site, person)
            if value
        )
        cards.append(
            f"<div class='card card-body shadow-form card-summary pt-3' data-detail-link='{link}'>"
            f"<div class='h4'>{escape(person.full_name)}</div>{badge}{facts}"
            f"<a class='btn btn-success detail-link' href='{link}'>View Details</a></div>"
        )
    return "".join(cards)


async def results(request: web.Request) -> web.Response:
    site, query = request.app[SITE], request.query
    try:
        number = max(1, int(query.get("page", "1")))
    except ValueError:
        return page("Search", "<p class='error'>Invalid page.</p>", status=400)
    if "phoneno" in query:
        digits = "".join(c for c in query["phoneno"] if c.isdigit())[-10:]
        found, title = site.visible(site.by_phone.get(digits, [])), query["phoneno"]
    else:
        name = parse_name(query.get("name", ""))
        if name is None:
            return page("Search", "<p class='error'>Please enter a first and last name.</p>", status=400)
        city, state, zip_code = parse_place(query.get("citystatezip", "").replace(",", " ").split())
        found, title = site.search(*name, city=city, state=state, zip_code=zip_code), query["name"]
    shown = found[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    head = ""
    if site.layout in layouts.LAYOUTS:
        summaries, first = [result_summary(site, p) for p in shown], (number - 1) * PAGE_SIZE + 1
        body, head = layouts.results(site.layout, f"{len(found)} records found for {title}", summaries, first)
    else:
        count = "record-count" if not site.v2 else "results-total"
        body = f"<div class='{count}'>{len(found)} records found for {escape(title)}</div>" + results_html(site, shown)
    if number * PAGE_SIZE < len(found):
        href = escape(f"/results?{urlencode({**query, 'page': number + 1})}")
        body += (
            f"<a class='pager-next' rel='next' href='{href}'>Next</a>"
            if site.v2
            else f"<a id='btnNextPage' class='btn btn-next' href='{href}'>Next Page</a>"
        )
    return page(f"{title} - {BRAND}", body, head=head)


def phone_rows(site: Site, person: Person) -> str:
    rows = []
    for i, phone in enumerate(person.phones):
        month, year = reported_month(SITE_ID, person, phone.number)
        primary = "<span class='phone-primary'>Primary</span> " if i == 0 else ""
        link = f"/results?phoneno={quote(phone.formatted())}"
        cls = "ph-row" if site.v2 else "phone-row"
        rows.append(
            f"<div class='{cls}'><a data-link-to-more='phone' href='{link}'>"
            f"<span itemprop='telephone'>{phone.formatted()}</span></a> - <span class='phone-type'>{phone.type}"
            f"</span> {primary}<div class='smaller'>Last reported {month_year(month, year, short=True)}</div>"
            f"<div class='smaller carrier'>{escape(phone.carrier)}</div></div>"
        )
    return "".join(rows)


def profile(site: Site, person: Person) -> layouts.Profile:
    """A detail page's values for the redesigns, as v1 writes them."""
    phones = []
    for i, phone in enumerate(person.phones):
        month, year = reported_month(SITE_ID, person, phone.number)
        link = f"/results?phoneno={quote(phone.formatted())}"
        reported = month_year(month, year, short=True)
        phones.append(layouts.Phone(phone.formatted(), link, phone.type, i == 0, reported, phone.carrier))
    relatives = [(r.full_name, listing_url(r)) for r in filter(None, map(site.population.get, person.relatives))]
    return layouts.Profile(
        link=listing_url(person),
        full_name=person.full_name,
        given_name=person.first_name,
        additional_name=person.middle_name,
        family_name=person.last_name,
        age=person.age,
        deceased=is_deceased(person),
        aliases=list(person.aliases),
        addresses=[layouts.Address(long_street(a.street), a.city, a.state, a.zip, a.since) for a in person.addresses],
        phones=phones,
        emails=list(person.emails),
        relatives=relatives,
    )


async def detail(request: web.Request) -> web.Response:
    site = request.app[SITE]
    person = request.app[DETAILS].get(request.match_info["opaque"])
    if person is None or site.optouts.hidden(person):
        return page("Not found", "<h1>Sorry, this record is no longer available.</h1>", status=404)
    if site.layout in layouts.LAYOUTS:
        body, head = layouts.detail(site.layout, profile(site, person))
        return page(f"{person.full_name} - {BRAND}", body, head=head)
    current, v2 = person.current, site.v2

    def address(a: Address) -> str:
        return (
            f"<div data-link-to-more='address'>{escape(long_street(a.street))}<br>{escape(city_line(a))}"
            f"<div class='smaller'>({a.since})</div></div>"
        )

    relatives = []
    for relative in filter(None, map(site.population.get, person.relatives)):
        link, name = listing_url(relative), escape(relative.full_name)
        relatives.append(f"<a data-link-to-more='relative' href='{link}'>{name}</a>" if link else f"<b>{name}</b>")
    sections = {
        "aliases": ("Also Seen As", "".join(f"<div>{escape(a)}</div>" for a in person.aliases)),
        "current": ("Current Address", address(current)),
        "phones": ("Phone Numbers", phone_rows(site, person)),
        "emails": ("Email Addresses", "".join(f"<div>{escape(e)}</div>" for e in person.emails)),
        "previous": ("Previous Addresses", "".join(map(address, person.addresses[1:]))),
        "relatives": ("Possible Relatives", "".join(relatives)),
    }
    order = ["current", "phones", "emails", "relatives", "previous", "aliases"] if v2 else list(sections)
    blocks = "".join(
        f"<div class='{'blk blk-' if v2 else 'section '}{key}'><h2>{heading}</h2>{content}</div>"
        for key, (heading, content) in ((k, sections[k]) for k in order)
        if content
    )
    deceased = "<span class='deceased'>Deceased</span>" if is_deceased(person) else ""
    name = escape(person.full_name)
    if v2:
        place = escape(f"{current.city}, {current.state}")
        header = (
            f"<div class='person-header' data-person-name='{name}' data-person-age='{person.age}' "
            f"data-person-location='{place}'><h1>{name}</h1>{deceased}</div>"
        )
        body = f"<div class='profile'><div class='profile-inner'>{header}{blocks}</div></div>"
    else:
        attributes = {
            "fn": person.first_name,
            "mn": person.middle_name,
            "ln": person.last_name,
            "age": person.age,
            "city": current.city,
            "state": current.state,
            "deceased": str(is_deceased(person)).lower(),
        }
        data = " ".join(f"data-{k}='{escape(str(v))}'" for k, v in attributes.items())
        body = (
            f"<div id='personDetails' {data}><h1 class='oh1'>{name}</h1>{deceased}"
            f"<span class='age'>Age {person.age}</span>{blocks}</div>"
        )
    return page(f"{person.full_name} - {BRAND}", body)


def removal_form(url: str = "", email: str = "", error: str = "") -> str:
    return (
        "<h1>Remove my record</h1>"
        + (f"<p class='error'>{escape(error)}</p>" if error else "")
        + "<form id='removal' method='post' action='/removal'>"
        f"<label>Record URL <input name='url' value='{escape(url)}'></label>"
        f"<label>E-mail <input name='email' type='email' value='{escape(email)}'></label>"
        f"<div class='g-recaptcha' data-sitekey='{SITE_KEY}'></div>"
        "<textarea name='g-recaptcha-response' class='g-recaptcha-response' style='display:none'></textarea>"
        "<button type='submit'>Submit removal request</button></form>"
    )


async def removal(_request: web.Request) -> web.Response:
    return page(f"Remove my record - {BRAND}", removal_form())


async def removal_post(request: web.Request) -> web.Response:
    site = request.app[SITE]
    form = await request.post()
    url, email = str(form.get("url", "")).strip(), str(form.get("email", "")).strip()
    if not site.optouts.captcha_solved(str(form.get("g-recaptcha-response", ""))):
        return page(f"Remove my record - {BRAND}", removal_form(url, email, "Please complete the CAPTCHA."), 400)
    found = site.optouts.find(url)
    if found is None or not valid_email(email):
        error = "That is not the address of a record on our site." if found is None else "Enter a valid e-mail."
        return page(f"Remove my record - {BRAND}", removal_form(url, email, error), 400)
    site.optouts.submit(*found)
    body = (
        "<h1>Thank you</h1><p class='notice'>Your removal request has been received. "
        f"The record will be removed within {PROCESSING_DAYS} days.</p>"
    )
    return page(f"Removal requested - {BRAND}", body)


async def home(_request: web.Request) -> web.Response:
    form = (
        "<form action='/results'><input name='name' placeholder='Name'>"
        "<input name='citystatezip' placeholder='City, State or ZIP'><button>Search</button></form>"
    )
    return page(BRAND, form)


def make_app(options: dict) -> web.Application:
    app, site = make_site_app(SITE_ID, options, SHARE, DEFAULTS, gate)
    app[DETAILS] = {opaque_id(p): p for p in site.people}
    app.router.add_get("/", home)
    app.router.add_get("/results", results)
    app.router.add_get("/find/person/{opaque}", detail)
    app.router.add_get("/InternalCaptcha", captcha)
    app.router.add_get("/removal", removal)
    app.router.add_post("/removal", removal_post)
    install(app, site, listing_url)
    return app


SERVICE = register(Service(SITE_ID, 8402, make_app, "TruePeopleSearch-like broker (interstitial, captcha)"))
