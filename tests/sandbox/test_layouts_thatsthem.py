"""ThatsThem's redesigns for self-healing extraction (``structural``, ``jsonld``, ``partial``), against the sandbox.

Each must list the same records at the same URLs in the same order as v1, carry every v1 value of a record in
its v1 text, keep v1's next-page link and "No results found" / "Record not found" pages, keep the injected
name inert, and really differ: the v1 site definition (spiders/sites/thatsthem.yaml) reads less of them,
nothing at all of ``structural`` and ``jsonld``.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from urllib.parse import urlsplit

import aiohttp
import pytest
from scrapy.http import HtmlResponse

from crawler.extraction import extract_detail, extract_list, load_definition
from crawler.extraction.engine import visible_text
from sandbox.brokers import thatsthem
from sandbox.brokers.common import dashed
from sandbox.population import default_population

POPULATION = default_population()
REDESIGNS = ("structural", "jsonld", "partial")
DEFINITION = load_definition("spiders/sites/thatsthem.yaml")
# where each layout's lookup page links its records (the jsonld page's JSON-LD is checked beside its <ul>)
RECORD_LINKS = {
    "v1": "div.ThatsThem-results div.ThatsThem-record::attr(data-record-url)",
    "structural": "table.people-list tbody tr td a[href^='/person/']::attr(href)",
    "jsonld": "main ul li a::attr(href)",
    "partial": "div.ThatsThem-results div.ThatsThem-record h2 a::attr(href)",
}
RECORDS = {"structural": "table.people-list tbody tr", "partial": "div.ThatsThem-record"}


def configure(base: str, **config) -> dict:
    request = urllib.request.Request(
        f"{base}/_sandbox/config", data=json.dumps(config).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def thatsthem_url(sandbox):
    """The site in v1 without its rate limit (the tests make many requests), back to its defaults afterwards."""
    configure(sandbox["thatsthem"], defaults=True, reset=True, rate_limit_per_minute=0)
    yield sandbox["thatsthem"]
    configure(sandbox["thatsthem"], defaults=True, reset=True)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def fetch(http, url: str, status: int = 200) -> HtmlResponse:
    async with http.get(url, allow_redirects=False) as response:
        body = await response.read()
        assert response.status == status, (url, response.status)
    return HtmlResponse(url, body=body, encoding="utf-8")


def json_ld(page: HtmlResponse) -> list[dict]:
    return [json.loads(s) for s in page.css("script[type='application/ld+json']::text").getall()]


def path_of(url: str) -> str:
    return urlsplit(url).path


def address_line(postal: dict) -> str:
    """A schema.org PostalAddress as the v1 definition reads an address: "STREET, CITY, ST ZIP"."""
    return f"{postal['streetAddress']}, {postal['addressLocality']}, {postal['addressRegion']} {postal['postalCode']}"


def popular_name() -> tuple[str, str]:
    (first, last), _ = Counter((p.first_name, p.last_name) for p in POPULATION.people).most_common(1)[0]
    return first, last


def handful() -> list:
    """Listed people with every kind of value, one with fewer, and the one whose name carries a payload."""
    listed = [p for p in POPULATION.people if thatsthem.listing_url(p)]
    rich = [p for p in listed if p.emails and p.aliases and len(p.relatives) > 1 and len(p.addresses) > 2][:4]
    sparse = next(p for p in listed if not p.emails or not p.aliases or len(p.addresses) == 1)
    return [*rich, sparse, POPULATION.get(thatsthem.INJECTED_PERSON)]


def v1_texts(person, with_relatives: bool) -> list[str]:
    """Every value of the record as v1 writes it (each address line on its own, as v1 breaks them)."""
    addresses = [line for a in person.addresses for line in thatsthem.address_lines(a)]
    phones = [dashed(p.number) for p in person.phones]
    kinds = [thatsthem.PHONE_TYPES.get(p.type, p.type) for p in person.phones]
    texts = [thatsthem.display_name(person), thatsthem.born(person), *addresses, *phones, *kinds, *person.emails]
    texts += [", ".join(person.aliases)] if person.aliases else []
    relatives = [f"{r.first_name} {r.last_name}" for r in map(POPULATION.get, person.relatives)]
    return texts + ([", ".join(relatives)] if with_relatives and relatives else [])


def assert_person_ld(data: dict, person) -> None:
    """A JSON-LD Person holds the record's values in v1's formats."""
    assert data["@type"] == "Person" and data["name"] == thatsthem.display_name(person)
    assert data.get("alternateName", []) == person.aliases and data.get("email", []) == person.emails
    assert data.get("telephone", []) == [dashed(p.number) for p in person.phones]
    assert [address_line(a) for a in data["address"]] == [
        ", ".join(thatsthem.address_lines(a)) for a in person.addresses
    ]


async def lookup_pages(http, base: str, path: str) -> list[HtmlResponse]:
    """Every page of a lookup, by following ``a.next-page`` as the v1 definition does."""
    pages, url = [], base + path
    while url:
        pages.append(await fetch(http, url))
        following = pages[-1].css("a.next-page::attr(href)").get()
        url = base + following if following else None
    return pages


async def test_lookup_pages_list_the_same_records_in_the_same_order_with_v1_paging(thatsthem_url, http):
    first, last = popular_name()
    people = {thatsthem.listing_url(p): p for p in POPULATION.people}
    rich = handful()[0]
    lookups = [f"/name/{first}-{last}", f"/phone/{dashed(rich.phones[0].number)}", f"/email/{rich.emails[0]}"]
    v1 = {path: await lookup_pages(http, thatsthem_url, path) for path in lookups}
    expected = {path: [page.css(RECORD_LINKS["v1"]).getall() for page in pages] for path, pages in v1.items()}
    assert len(expected[lookups[0]]) >= 2 and thatsthem.listing_url(rich) in expected[lookups[1]][0]
    for layout in REDESIGNS:
        configure(thatsthem_url, layout=layout)
        for path in lookups:
            pages = await lookup_pages(http, thatsthem_url, path)
            assert [page.css(RECORD_LINKS[layout]).getall() for page in pages] == expected[path], (layout, path)
            for old, new in zip(v1[path], pages, strict=True):
                assert new.css("a.next-page").get() == old.css("a.next-page").get()
        first_page = (await lookup_pages(http, thatsthem_url, lookups[0]))[0]
        if layout == "jsonld":
            (listing,) = json_ld(first_page)
            items = listing["itemListElement"]
            assert [path_of(i["url"]) for i in items] == expected[lookups[0]][0]
            for item in items:
                person = people[path_of(item["url"])]
                assert_person_ld(item["item"], person)
                assert item["item"]["description"] == f"Born {thatsthem.born(person)}"
            continue
        for record, url in zip(first_page.css(RECORDS[layout]), expected[lookups[0]][0], strict=True):
            text = visible_text(record)
            assert all(value in text for value in v1_texts(people[url], with_relatives=False)), (layout, url)
    for layout in REDESIGNS:  # the same "no results" and "not found" pages as v1
        configure(thatsthem_url, layout=layout)
        for path in ("/name/Nobody-Atall", f"/name/{first}-{last}?page=99"):
            nobody = await fetch(http, thatsthem_url + path)
            assert nobody.css("div.no-results::text").get() == "No results found"
        unknown = await fetch(http, f"{thatsthem_url}/person/John-Smith/0000000000", status=404)
        assert unknown.css("h1::text").get() == "Record not found"


async def test_every_layout_shows_each_v1_value_of_a_record(thatsthem_url, http):
    for person in handful():
        url = thatsthem_url + thatsthem.listing_url(person)
        for layout in ("v1", "structural", "partial"):
            configure(thatsthem_url, layout=layout)
            page = await fetch(http, url)
            text = visible_text(page.selector)
            assert all(value in text for value in v1_texts(person, with_relatives=True)), layout
            # the payload name stays text: no element of it is live
            assert not page.css("img[onerror], script") and page.css("h1::text").get() == thatsthem.display_name(person)
        configure(thatsthem_url, layout="jsonld")
        page = await fetch(http, url)
        assert page.css("h1::text").get() == thatsthem.display_name(person)
        assert f"Born {thatsthem.born(person)}" in visible_text(page.selector)
        assert not page.css("img[onerror], script:not([type='application/ld+json'])")
        (data,) = json_ld(page)
        assert_person_ld(data, person)
        relatives = [f"{r.first_name} {r.last_name}" for r in map(POPULATION.get, person.relatives)]
        assert [r["name"] for r in data.get("relatedTo", [])] == relatives
        assert (await fetch(http, url)).body == page.body  # deterministic: the same page every time


def filled(record: dict) -> set[str]:
    return {key for key, value in record.items() if value not in (None, "", [], ())}


async def test_the_v1_definition_reads_less_of_every_redesign(thatsthem_url, http):
    """What spiders/sites/thatsthem.yaml reads of one lookup page and one record page in each layout."""
    first, last = popular_name()
    lookup, record_url = f"{thatsthem_url}/name/{first}-{last}", thatsthem_url + thatsthem.listing_url(handful()[0])
    lists, records = {}, {}
    for layout in ("v1", *REDESIGNS):
        configure(thatsthem_url, layout=layout)
        lists[layout] = extract_list(DEFINITION, await fetch(http, lookup))
        records[layout] = extract_detail(DEFINITION, await fetch(http, record_url))

    def card_fields(layout: str) -> set[str]:
        return set().union(*(filled(c) for c in lists[layout].candidates))

    assert len(lists["v1"].candidates) == thatsthem.PAGE_SIZE and lists["v1"].next_url
    assert card_fields("v1") == {"url", "full_name", "age", "locations"}
    every = {"full_name", "age", "birth_month", "birth_year", "aliases", "addresses", "locations", "phones"}
    every |= {"emails", "relatives"}
    assert filled(records["v1"]) >= every
    for layout in ("structural", "jsonld"):  # nothing at all (and so no next page: the engine stops on no cards)
        assert not lists[layout].candidates and not filled(records[layout]), layout
    partial = lists["partial"]  # the records are still found, their links, ages and places read, not their names
    assert [c["url"] for c in partial.candidates] == [c["url"] for c in lists["v1"].candidates]
    assert partial.next_url == lists["v1"].next_url and card_fields("partial") == card_fields("v1") - {"full_name"}
    detail = filled(records["partial"])
    assert detail == every - {"full_name", "aliases", "emails"}
    assert records["partial"]["addresses"] == records["v1"]["addresses"][:1]  # the previous ones are renamed away
