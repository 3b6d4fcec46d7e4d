"""The ``fastpeople``, ``truepeople`` and ``thatsthem`` broker sites, over HTTP against the session's sandbox.

Expected results come from the population and each module's ``listing_url`` ground truth. Rate limits are
per client IP and every test comes from 127.0.0.1, so the ``brokers`` fixture puts the three sites back to
their defaults with cleared counters before and after each test.
"""

from __future__ import annotations

import json
import re
import urllib.request
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
from parsel import Selector

from sandbox.brokers import fastpeople, thatsthem, truepeople
from sandbox.brokers.common import cf_decode, dashed, long_street, month_year
from sandbox.population import default_population

POPULATION = default_population()
SITES = {"fastpeople": fastpeople, "truepeople": truepeople, "thatsthem": thatsthem}


def control(base: str, path: str, data: dict | None = None) -> tuple[int, dict]:
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(base + path, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def configure(base: str, **changes) -> dict:
    status, config = control(base, "/_sandbox/config", changes)
    assert status == 200, config
    return config


@pytest.fixture
def brokers(sandbox):
    urls = {name: sandbox[name] for name in SITES}
    for url in urls.values():
        configure(url, defaults=True, reset=True)
    yield urls
    for url in urls.values():
        configure(url, defaults=True, reset=True)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # cookies on 127.0.0.1
        yield session


async def fetch(http, url: str, status: int = 200, **kwargs) -> tuple[Selector, aiohttp.ClientResponse]:
    async with http.get(url, allow_redirects=False, **kwargs) as response:
        text = await response.text()
        assert response.status == status, text[:300]
        return Selector(text=text), response


async def get(http, url: str, status: int = 200, **kwargs) -> Selector:
    return (await fetch(http, url, status, **kwargs))[0]


def named(person, first: str, last: str) -> bool:
    wanted = f"{first} {last}".casefold()
    return any(n.casefold() == wanted for n in [f"{person.first_name} {person.last_name}", *person.aliases])


def expected(module, first: str, last: str, where=lambda address: True) -> list[str]:
    """The site's listing paths for everybody named first last with an address where ``where`` holds."""
    return [
        module.listing_url(p)
        for p in POPULATION.people
        if module.listing_url(p) and named(p, first, last) and any(map(where, p.addresses))
    ]


def namesake_city(module, first: str, last: str):
    """A (city, state) where some, but not all, listed namesakes have lived."""
    people = [p for p in POPULATION.people if module.listing_url(p) and named(p, first, last)]
    for person in people:
        city, state = person.current.city, person.current.state
        if any(all((a.city, a.state) != (city, state) for a in p.addresses) for p in people):
            return city, state
    raise AssertionError("no namesakes")


def rich_person(module):
    """A listed person with every section: aliases, e-mails, relatives (listed and not), past addresses."""
    return next(
        p
        for p in POPULATION.people
        if module.listing_url(p)
        and p.aliases
        and p.emails
        and len(p.addresses) > 1
        and len(p.relatives) > 1
        and any(module.listing_url(POPULATION.get(r)) for r in p.relatives)
    )


def test_each_site_lists_its_own_stable_70_to_85_percent():
    listed = {}
    for name, module in SITES.items():
        urls = [module.listing_url(p) for p in POPULATION.people]
        assert 0.70 <= sum(u is not None for u in urls) / len(urls) <= 0.85, name
        assert len(set(filter(None, urls))) == sum(u is not None for u in urls)  # one page per person
        listed[name] = {p.id for p, u in zip(POPULATION.people, urls, strict=False) if u}
    assert len({frozenset(ids) for ids in listed.values()}) == 3
    assert [fastpeople.listing_url(p) for p in POPULATION.people[:50]] == [
        fastpeople.listing_url(p) for p in default_population().people[:50]
    ]


async def test_config_is_validated_and_stats_count(brokers, http):
    for name, base in brokers.items():
        assert control(base, "/_sandbox/config", {"layout": "v3"})[0] == 400
        assert control(base, "/_sandbox/config", {"nope": 1})[0] == 400
        assert control(base, "/_sandbox/config", {"rate_limit_per_minute": -1})[0] == 400
        assert control(base, "/_sandbox/config")[1]["layout"] == "v1"
        stats = control(base, "/_sandbox/stats")[1]
        assert stats["site"] == name and stats["counters"] == {}
        assert stats["listed"] == sum(SITES[name].listing_url(p) is not None for p in POPULATION.people)
    await get(http, brokers["fastpeople"] + "/name/john-smith")
    stats = control(brokers["fastpeople"], "/_sandbox/stats")[1]
    assert stats["counters"] == {"requests": 1, "status_200": 1} and list(stats["clients"].values()) == [1]


# ---- fastpeople ----------------------------------------------------------------------------------------


async def fastpeople_links(http, base: str, path: str, attribute: str = "data-link") -> list[str]:
    links, number = [], 1
    while True:
        page = await get(http, base + (path if number == 1 else f"{path}/page/{number}"))
        cards = page.css(
            f".people-list .card::attr({attribute})"
            if attribute == "data-link"
            else f"[{attribute}]::attr({attribute})"
        ).getall()
        assert len(cards) <= 10
        links += cards
        if not page.xpath("//nav/a[contains(., 'Next')]"):
            return links
        assert len(cards) == 10
        number += 1


async def test_fastpeople_search_pages_filters_and_past_the_last_page(brokers, http):
    base = brokers["fastpeople"]
    everybody = expected(fastpeople, "John", "Smith")
    assert len(everybody) > 20
    assert await fastpeople_links(http, base, "/name/john-smith") == everybody
    city, state = namesake_city(fastpeople, "John", "Smith")
    in_city = expected(fastpeople, "John", "Smith", lambda a: (a.city, a.state) == (city, state))
    slug = f"/name/john-smith_{'-'.join(re.findall(r'[a-z]+', city.lower()))}-{state.lower()}"
    assert await fastpeople_links(http, base, slug) == in_city and set(in_city) < set(everybody)
    in_state = expected(fastpeople, "John", "Smith", lambda a: a.state == state)
    assert await fastpeople_links(http, base, f"/name/john-smith_{state.lower()}") == in_state
    past = await get(http, f"{base}/name/john-smith/page/{len(everybody) // 10 + 2}")  # a 200, as on the real site
    assert "We could not find the page" in past.css("h1::text").get() and not past.css(".card")
    nobody = await get(http, f"{base}/name/nobody-atall")
    assert "could not find any records" in nobody.css("h1::text").get()
    alias = next(p for p in POPULATION.people if fastpeople.listing_url(p) and p.aliases)
    first, last = alias.aliases[0].lower().split()
    assert fastpeople.listing_url(alias) in await fastpeople_links(http, base, f"/name/{first}-{last}")
    phone = alias.phones[0].number
    lookup = await get(http, f"{base}/{dashed(phone)}")
    assert fastpeople.listing_url(alias) in lookup.css(".card::attr(data-link)").getall()


async def test_fastpeople_detail_values_cfemail_and_json_ld_defects(brokers, http):
    base, person = brokers["fastpeople"], rich_person(fastpeople)
    url = fastpeople.listing_url(person)
    assert re.fullmatch(r"/[a-z]+-[a-z]+_id_G\d{19}", url)
    page = await get(http, base + url)
    assert page.css("h1.fullname::text").get() == " ".join(
        filter(None, [person.first_name, person.middle_name, person.last_name])
    )
    assert page.xpath("normalize-space(//h2[@class='age']/following-sibling::text()[1])").get() == str(person.age)
    assert page.css("#aka-links li::text").getall() == person.aliases
    current = person.current
    assert page.css("#current_address_section li::text").getall() == [
        current.street,
        f"{current.city} {current.state} {current.zip}",
    ]
    since = page.css("#current_address_section .since::text").get()
    assert re.fullmatch(rf"Since [A-Z][a-z]+ {current.since}", since)
    assert len(page.css("#previous-address-links li")) == len(person.addresses) - 1
    assert page.css("#phone_number_section a::text").getall() == [p.formatted() for p in person.phones]
    encoded = page.css("#email_section a.__cf_email__::attr(data-cfemail)").getall()
    assert page.css("#email_section a::text").getall() == ["[email\xa0protected]"] * len(person.emails)
    assert [cf_decode(e) for e in encoded] == person.emails
    relatives = [POPULATION.get(r) for r in person.relatives]
    assert page.css("#relative-links a::attr(href)").getall() == list(
        filter(None, map(fastpeople.listing_url, relatives))
    )
    person_ld, faq = page.css("script[type='application/ld+json']::text").getall()
    data = json.loads(person_ld)
    assert "homeLocation" not in data and data["HomeLocation"]["address"]["postalCode"] == current.zip
    assert (data["givenName"], data["familyName"], data["additionalName"]) == (
        person.first_name,
        person.last_name,
        person.aliases,
    )
    assert data["telephone"] == [p.formatted() for p in person.phones] and len(data["relatedTo"]) == len(relatives)
    with pytest.raises(json.JSONDecodeError):
        json.loads(faq)
    assert faq.endswith("};") and json.loads(faq[:-1])["@type"] == "FAQPage"
    listing = await get(http, f"{base}/name/{person.first_name.lower()}-{person.last_name.lower()}")
    blocks = json.loads(listing.css("script[type='application/ld+json']::text").get())
    assert all("homeLocation" in block for block in blocks)  # only detail pages carry the capital H
    _, moved = await fetch(http, base + url.replace(url[1:].split("_")[0], "someone-else"), status=301)
    assert moved.headers["Location"] == url
    unlisted = next(p for p in POPULATION.people if fastpeople.listing_url(p) is None)
    assert fastpeople.listing_url(unlisted) is None


async def test_fastpeople_rate_limit_page_is_a_200(brokers, http):
    base = brokers["fastpeople"]
    assert configure(base, rate_limit_per_minute=3)["rate_limit_per_minute"] == 3
    for _ in range(3):
        assert (await get(http, f"{base}/name/mary-johnson")).css(".card")
    blocked = await get(http, f"{base}/name/mary-johnson")
    assert blocked.css("title::text").get() == "Rate Limit Exceeded" and not blocked.css(".card")
    assert control(base, "/_sandbox/stats")[1]["counters"]["rate_limited"] == 1


async def test_fastpeople_v2_layout_differs_but_holds_the_same_values(brokers, http):
    base, person = brokers["fastpeople"], rich_person(fastpeople)
    detail_url = base + fastpeople.listing_url(person)
    v1_list, v1_detail = await get(http, f"{base}/name/james-brown"), await get(http, detail_url)
    configure(base, layout="v2")
    v2_list, v2_detail = await get(http, f"{base}/name/james-brown"), await get(http, detail_url)
    assert not v2_list.css(".people-list, .card, [data-link]") and not v2_detail.css("#phone_number_section")
    assert v2_list.css("[data-href]::attr(data-href)").getall() == v1_list.css(".card::attr(data-link)").getall()
    assert v2_list.xpath("//dt[.='Age']/following-sibling::dd[1]/text()").getall() == [
        t.strip() for t in v1_list.xpath("//h3[.='Age:']/following-sibling::text()[1]").getall()
    ]
    assert v2_detail.css("[data-section='phones'] a::text").getall() == [p.formatted() for p in person.phones]
    assert v2_detail.css("h2::text").getall()[1:] != v1_detail.css("h2::text").getall()[1:]  # reordered
    assert sorted(v2_detail.css("h2::text").getall()) == sorted(v1_detail.css("h2::text").getall())
    emails = v2_detail.css("[data-section='emails'] [data-cfemail]::attr(data-cfemail)").getall()
    assert [cf_decode(e) for e in emails] == person.emails
    assert (
        v2_detail.css("script[type='application/ld+json']::text").getall()
        == v1_detail.css("script[type='application/ld+json']::text").getall()
    )


# ---- truepeople ----------------------------------------------------------------------------------------


async def cleared(http, base: str) -> None:
    """Meet the interstitial once; the jar keeps the cf_clearance its Set-Cookie carries."""
    await get(http, base + "/", status=503)


async def test_truepeople_interstitial_cookie_bound_to_the_client(brokers, http):
    base = brokers["truepeople"]
    challenge, response = await fetch(http, f"{base}/results?name=Mary+Johnson", status=503)
    assert challenge.css("title::text").get() == "Just a moment..." and response.headers["cf-mitigated"] == "challenge"
    seed = challenge.css("#challenge-form::attr(data-seed)").get()
    token = truepeople.clearance_token(seed)  # what the inline script computes, without running it
    assert f'var s="{seed}"' in challenge.css("script::text").get()
    assert response.cookies["cf_clearance"].value == token
    assert (await get(http, f"{base}/results?name=Mary+Johnson")).css(".card-summary")  # the jar obeyed Set-Cookie
    async with aiohttp.ClientSession() as bare:  # no jar: the computed cookie alone passes
        await get(bare, f"{base}/results?name=Mary+Johnson", headers={"Cookie": f"cf_clearance={token}"})
        await get(
            bare,
            f"{base}/results?name=Mary+Johnson",
            status=503,
            headers={"Cookie": f"cf_clearance={token}", "User-Agent": "another browser"},
        )
        configure(base, interstitial=False)
        await get(bare, f"{base}/results?name=Mary+Johnson")
    assert control(base, "/_sandbox/stats")[1]["counters"]["interstitial"] == 2


async def truepeople_links(http, base: str, query: str) -> tuple[list[str], set[str]]:
    links, counts, url = [], set(), f"{base}/results?{query}"
    while url:
        page = await get(http, url)
        counts.add(page.css(".record-count::text").get())
        cards = page.css(".card-summary::attr(data-detail-link)").getall()
        assert len(cards) <= 10
        links += cards
        following = page.css("#btnNextPage::attr(href)").get()
        url = base + following if following else None
        assert following is None or len(cards) == 10
    return links, counts


async def test_truepeople_search_pages_and_citystatezip(brokers, http):
    base = brokers["truepeople"]
    await cleared(http, base)
    everybody = expected(truepeople, "John", "Smith")
    links, counts = await truepeople_links(http, base, "name=John+Smith")
    assert links == everybody and counts == {f"{len(everybody)} records found for John Smith"}
    assert len(everybody) > 10
    city, state = namesake_city(truepeople, "John", "Smith")
    in_city = expected(truepeople, "John", "Smith", lambda a: (a.city, a.state) == (city, state))
    links, _ = await truepeople_links(http, base, f"name=John+Smith&citystatezip={quote(city)},+{state}")
    assert links == in_city and set(in_city) < set(everybody)
    person = POPULATION.get(next(p.id for p in POPULATION.people if truepeople.listing_url(p) == in_city[0]))
    home = next(a for a in person.addresses if (a.city, a.state) == (city, state))
    zip_area = expected(truepeople, "John", "Smith", lambda a: a.zip[:3] == home.zip[:3])
    assert (await truepeople_links(http, base, f"name=john+smith&citystatezip={home.zip}"))[0] == zip_area
    results = await get(http, f"{base}/results?name=John+Smith&citystatezip={quote(city)},+{state}")
    card = results.css(".card-summary")[0]
    assert card.css(".h4::text").get() == person.full_name
    assert f"in their {person.age // 10 * 10}s" in card.css(".content-value::text").getall()


async def test_truepeople_detail_data_attributes_and_phones(brokers, http):
    base, person = brokers["truepeople"], rich_person(truepeople)
    await cleared(http, base)
    url = truepeople.listing_url(person)
    assert re.fullmatch(r"/find/person/px[0-9a-z]+", url)
    page = await get(http, base + url)
    box = page.css("#personDetails")
    current = person.current
    assert [box.attrib[f"data-{k}"] for k in ("fn", "ln", "age", "city", "state")] == [
        person.first_name,
        person.last_name,
        str(person.age),
        current.city,
        current.state,
    ]
    rows = page.css(".phone-row")
    assert rows.css("[itemprop=telephone]::text").getall() == [p.formatted() for p in person.phones]
    assert rows.css(".phone-type::text").getall() == [p.type for p in person.phones]
    assert rows.css(".carrier::text").getall() == [p.carrier for p in person.phones]
    assert len(rows.css(".phone-primary")) == 1 and rows[0].css(".phone-primary::text").get() == "Primary"
    for reported in rows.css(".smaller:not(.carrier)::text").getall():
        _, year = re.fullmatch(r"Last reported ([A-Z][a-z]{2}) (\d{4})", reported).groups()
        assert current.since <= int(year) <= 2026
    assert page.css(".section.current [data-link-to-more=address]::text").getall()[0] == long_street(current.street)
    assert page.css(".section.emails div::text").getall() == person.emails
    relatives = [truepeople.listing_url(POPULATION.get(r)) for r in person.relatives]
    assert page.css("[data-link-to-more=relative]::attr(href)").getall() == list(filter(None, relatives))
    phone = await get(http, base + rows[0].css("a::attr(href)").get())
    assert url in phone.css(".card-summary::attr(data-detail-link)").getall()
    await get(http, f"{base}/find/person/pxnosuchperson", status=404)


async def test_truepeople_marks_about_three_percent_deceased(brokers, http):
    base = brokers["truepeople"]
    await cleared(http, base)
    listed = [p for p in POPULATION.people if truepeople.listing_url(p)]
    dead = [p for p in listed if truepeople.is_deceased(p)]
    assert 0.01 <= len(dead) / len(listed) <= 0.05
    person = dead[0]
    results = await get(
        http,
        f"{base}/results?name={person.first_name}+{person.last_name}"
        f"&citystatezip={quote(person.current.city)},+{person.current.state}",
    )
    url = truepeople.listing_url(person)
    card = next(c for c in results.css(".card-summary") if c.attrib["data-detail-link"] == url)
    assert card.css(".deceased::text").get() == "Deceased"
    detail = await get(http, base + truepeople.listing_url(person))
    assert detail.css("#personDetails::attr(data-deceased)").get() == "true"


async def test_truepeople_bursts_are_sent_to_the_captcha(brokers, http):
    base = brokers["truepeople"]
    await cleared(http, base)
    configure(base, burst_limit=3)
    for _ in range(3):
        await get(http, f"{base}/results?name=James+Brown")
    _, response = await fetch(http, f"{base}/results?name=James+Brown&page=2", status=302)
    location = urlsplit(response.headers["Location"])
    assert location.path == "/InternalCaptcha"
    assert parse_qs(location.query)["returnUrl"] == ["/results?name=James+Brown&page=2"]
    captcha = await get(http, base + response.headers["Location"])
    assert captcha.css("div.g-recaptcha") and captcha.css("input[name=returnUrl]::attr(value)").get()
    assert control(base, "/_sandbox/stats")[1]["counters"]["captcha"] == 1


async def test_truepeople_v2_layout_differs_but_holds_the_same_values(brokers, http):
    base, person = brokers["truepeople"], rich_person(truepeople)
    await cleared(http, base)
    v1 = await get(http, f"{base}/results?name=John+Smith")
    configure(base, layout="v2")
    v2 = await get(http, f"{base}/results?name=John+Smith")
    assert not v2.css(".card-summary") and v2.css("table.result-table")
    assert v2.css("tr.result-row::attr(data-url)").getall() == v1.css(".card-summary::attr(data-detail-link)").getall()
    assert v2.css(".pager-next::attr(href)").get() == v1.css("#btnNextPage::attr(href)").get()
    assert v2.css(".results-total::text").get() == v1.css(".record-count::text").get()
    detail = await get(http, base + truepeople.listing_url(person))
    header = detail.css(".person-header")
    assert not detail.css("#personDetails") and header.attrib["data-person-name"] == person.full_name
    assert header.attrib["data-person-age"] == str(person.age)
    assert header.attrib["data-person-location"] == f"{person.current.city}, {person.current.state}"
    assert detail.css(".ph-row [itemprop=telephone]::text").getall() == [p.formatted() for p in person.phones]


# ---- thatsthem -----------------------------------------------------------------------------------------


async def thatsthem_links(http, base: str, path: str, selector: str = ".ThatsThem-record::attr(data-record-url)"):
    links, url = [], base + path
    while url:
        page = await get(http, url)
        links += page.css(selector).getall()
        following = page.css("a.next-page::attr(href)").get()
        url = base + following if following else None
    return links


async def test_thatsthem_name_lookups_with_place_and_pages(brokers, http):
    base = brokers["thatsthem"]
    everybody = expected(thatsthem, "John", "Smith")
    assert len(everybody) > 20 and await thatsthem_links(http, base, "/name/John-Smith") == everybody
    city, state = namesake_city(thatsthem, "John", "Smith")
    in_city = expected(thatsthem, "John", "Smith", lambda a: (a.city, a.state) == (city, state))
    person = next(p for p in POPULATION.people if thatsthem.listing_url(p) == in_city[0])
    home = next(a for a in person.addresses if (a.city, a.state) == (city, state))
    place = f"{city.replace(' ', '-')}-{state}-{home.zip}"
    in_place = expected(
        thatsthem, "John", "Smith", lambda a: (a.city, a.state) == (city, state) and a.zip[:3] == home.zip[:3]
    )
    assert await thatsthem_links(http, base, f"/name/John-Smith/{place}") == in_place and set(in_place) < set(everybody)
    assert await thatsthem_links(http, base, f"/name/John-Smith/{city.replace(' ', '-')}-{state}") == in_city
    empty = await get(http, f"{base}/name/John-Smith?page=99")
    assert empty.css(".no-results::text").get() == "No results found"


async def test_thatsthem_records_phone_and_email_lookups(brokers, http):
    base, person = brokers["thatsthem"], rich_person(thatsthem)
    url = thatsthem.listing_url(person)
    by_phone = await get(http, f"{base}/phone/{dashed(person.phones[0].number)}")
    record = next(r for r in by_phone.css(".ThatsThem-record") if r.attrib["data-record-url"] == url)
    born = f"Born {month_year(person.birth_month, person.birth_year)} ({person.age} years old)"
    assert record.css(".ThatsThem-record-age::text").get() == born
    middle = f" {person.middle_name[0]}." if person.middle_name else ""
    assert record.css(".ThatsThem-record-name a::text").get() == f"{person.last_name}, {person.first_name}{middle}"
    assert [t.strip() for t in record.css(".ThatsThem-record-address::text").getall()] == [
        person.current.street.upper(),
        f"{person.current.city.upper()}, {person.current.state} {person.current.zip}",
    ]
    assert record.css(".ThatsThem-record-phones a::text").getall() == [dashed(p.number) for p in person.phones]
    assert record.css(".ThatsThem-record-emails a::text").getall() == person.emails
    by_email = await get(http, f"{base}/email/{person.emails[0]}")
    assert url in by_email.css(".ThatsThem-record::attr(data-record-url)").getall()
    detail = await get(http, base + url)
    assert detail.css(".ThatsThem-record-age::text").get() == born and detail.css(".ThatsThem-record-relatives")
    assert (await get(http, f"{base}/email/nobody@example.com")).css(".no-results")


async def test_thatsthem_rate_limit_is_a_plain_403_with_retry_after(brokers, http):
    base = brokers["thatsthem"]
    configure(base, rate_limit_per_minute=2)
    for _ in range(2):
        await get(http, f"{base}/name/Mary-Johnson")
    async with http.get(f"{base}/name/Mary-Johnson") as response:
        assert response.status == 403 and await response.text() == "Access denied"
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert control(base, "/_sandbox/stats")[1]["counters"]["forbidden"] == 1


async def test_thatsthem_v2_is_a_table_with_the_same_values(brokers, http):
    base = brokers["thatsthem"]
    v1 = await get(http, f"{base}/name/John-Smith")
    configure(base, layout="v2")
    v2 = await get(http, f"{base}/name/John-Smith")
    assert not v2.css(".ThatsThem-record") and v2.css("table.tt-results")
    records = v1.css(".ThatsThem-record::attr(data-record-url)").getall()
    assert v2.css("tbody.tt-rec::attr(data-url)").getall() == records and len(records) == 10
    born = ["Born " + t for t in v2.xpath("//th[.='Born']/following-sibling::td/text()").getall()]
    assert born == v1.css(".ThatsThem-record-age::text").getall()
    assert v2.css(".row-phones a::text").getall() == v1.css(".ThatsThem-record-phones a::text").getall()
