"""Radaris's redesigns for self-healing extraction (``structural``, ``jsonld``, ``partial``), against the sandbox.

Each must list the same people at the same URLs in the same order as v1, carry every v1 value of a profile
in its v1 text, keep v1's pagination and "no results" / "not found" pages, and really differ: the v1 site
definition (spiders/sites/radaris.yaml) reads less of them, nothing at all of ``structural`` and ``jsonld``.
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
from sandbox.brokers import radaris
from sandbox.population import default_population

POPULATION = default_population()
REDESIGNS = ("structural", "jsonld", "partial")
UNLIMITED = 100_000
DEFINITION = load_definition("spiders/sites/radaris.yaml")
# where each layout's result page links its people (the jsonld page's JSON-LD is checked beside its <ul>)
RESULT_LINKS = {
    "v1": "div.results div.card .card-title a::attr(href)",
    "structural": "table.people-table tbody tr td a::attr(href)",
    "jsonld": "main ul:not(.pagination) li a::attr(href)",
    "partial": "div.results div.result .card-title a::attr(href)",
}


def configure(base: str, **config) -> dict:
    request = urllib.request.Request(
        f"{base}/_sandbox/config", data=json.dumps(config).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def radaris_url(sandbox):
    """The site without its rate limit (the tests make many requests), back to v1 and its defaults afterwards."""
    configure(sandbox["radaris"], layout="v1", rate_limit_per_minute=UNLIMITED)
    yield sandbox["radaris"]
    configure(sandbox["radaris"], layout="v1", rate_limit_per_minute=radaris.DEFAULT_RATE_LIMIT)


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


def popular_name() -> tuple[str, str]:
    (first, last), _ = Counter((p.first_name, p.last_name) for p in POPULATION.people).most_common(1)[0]
    return first, last


def handful() -> list:
    """Listed people with every kind of value, and one with empty sections, so both shapes are shown."""
    listed = [p for p in POPULATION.people if radaris.listing_url(p)]
    rich = [p for p in listed if p.emails and p.aliases and len(p.relatives) > 1 and len(p.addresses) > 2][:4]
    sparse = next(p for p in listed if not p.emails or not p.relatives)
    return [*rich, sparse]


def v1_values(person) -> dict[str, list[str]]:
    """The profile's values as v1 writes them."""
    return {
        "name": [radaris.display_name(person)],
        "phones": [radaris.phone(p.number) for p in person.phones],
        "emails": list(person.emails),
        "addresses": [a.line() for a in person.addresses],
        "relatives": [radaris.display_name(POPULATION.get(r)) for r in person.relatives],
        "aliases": [", ".join(person.aliases)] if person.aliases else [],
    }


async def result_pages(http, base: str, first: str, last: str) -> list[HtmlResponse]:
    """Every result page of the name, by following ``ul.pagination``'s next link as the v1 definition does."""
    pages, url = [], f"{base}/people/{first}-{last}"
    while url:
        pages.append(await fetch(http, url))
        following = pages[-1].css("ul.pagination li.next:not(.disabled) a::attr(href)").get()
        url = base + following if following else None
    return pages


async def test_result_pages_list_the_same_people_in_the_same_order_with_v1_pagination(radaris_url, http):
    first, last = popular_name()
    v1 = await result_pages(http, radaris_url, first, last)
    expected = [[path_of(u) for u in page.css(RESULT_LINKS["v1"]).getall()] for page in v1]
    assert len(v1) >= 2 and sum(map(len, expected)) > radaris.PAGE_SIZE
    people = {radaris.listing_url(p): p for p in POPULATION.people}
    for layout in REDESIGNS:
        configure(radaris_url, layout=layout)
        pages = await result_pages(http, radaris_url, first, last)
        assert [page.css(RESULT_LINKS[layout]).getall() for page in pages] == expected, layout
        for old, new in zip(v1, pages, strict=True):
            assert new.css("ul.pagination").get() == old.css("ul.pagination").get()
        last_page = pages[-1]
        if layout == "jsonld":
            (listing,) = json_ld(last_page)
            items = listing["itemListElement"]
            assert [path_of(i["url"]) for i in items] == expected[-1]
            assert [i["position"] for i in items] == list(range(1, len(items) + 1))
            for item in items:
                person, card = people[path_of(item["url"])], item["item"]
                assert card["name"] == radaris.display_name(person)
                assert card["description"] == f"{person.age} years old"
                assert card.get("alternateName", []) == person.aliases
                places = [f"{a['addressLocality']}, {a['addressRegion']}" for a in card["address"]]
                assert places == [f"{person.current.city}, {person.current.state}", *radaris.past_cities(person)]
            continue
        rows = last_page.css("table.people-table tbody tr" if layout == "structural" else "div.result")
        for row, url in zip(rows, expected[-1], strict=True):
            person, text = people[url], visible_text(row)
            card = [radaris.display_name(person), str(person.age), f"{person.current.city}, {person.current.state}"]
            card += [", ".join(person.aliases), "; ".join(radaris.past_cities(person))]
            assert all(value in text for value in card), (layout, url)
    for layout in REDESIGNS:  # the same "no results" and "not found" pages as v1
        configure(radaris_url, layout=layout)
        nobody = await fetch(http, f"{radaris_url}/people/Nobody-Atall/NY/Albany")
        assert nobody.css("p.no-results::text").get() == "No people found"
        past_the_end = await fetch(http, f"{radaris_url}/people/{first}-{last}/{len(v1) + 1}", status=404)
        assert past_the_end.css("p.no-results::text").get() == "No people found"
        unknown = await fetch(http, f"{radaris_url}/p/John/Smith/U000000000", status=404)
        assert unknown.css("p.error::text").get() == "Profile not found"


async def test_every_layout_shows_each_v1_value_of_a_profile(radaris_url, http):
    for person in handful():
        values, url = v1_values(person), radaris_url + radaris.listing_url(person)
        relative_urls = [radaris.listing_url(POPULATION.get(r)) for r in person.relatives]
        for layout in ("v1", "structural", "partial"):
            configure(radaris_url, layout=layout)
            page = await fetch(http, url)
            text = visible_text(page.selector)
            age = f"Age: {person.age}" if layout == "structural" else f"Age {person.age}"  # "Age:" reworded
            assert age in text, layout
            for key, wanted in values.items():
                assert all(value in text for value in wanted), (layout, key)
            links = page.css("a::attr(href)").getall()
            assert all(u in links for u in relative_urls if u), layout
        configure(radaris_url, layout="jsonld")
        page = await fetch(http, url)
        assert page.css("h1::text").get() == radaris.display_name(person)
        assert f"{person.age} years old" in visible_text(page.selector)
        (data,) = json_ld(page)
        assert data["@type"] == "Person" and data["name"] == radaris.display_name(person)
        assert data.get("alternateName", []) == person.aliases
        assert data.get("telephone", []) == values["phones"] and data.get("email", []) == values["emails"]
        lines = [
            f"{a['streetAddress']}, {a['addressLocality']}, {a['addressRegion']} {a['postalCode']}"
            for a in data["address"]
        ]
        assert lines == values["addresses"]
        relatives = data.get("relatedTo", [])
        assert [r["name"] for r in relatives] == values["relatives"]
        assert [path_of(r["url"]) if "url" in r else None for r in relatives] == relative_urls
        assert (await fetch(http, url)).body == page.body  # deterministic: the same page every time


def filled(record: dict) -> set[str]:
    return {key for key, value in record.items() if value not in (None, "", [], ())}


async def test_the_v1_definition_reads_less_of_every_redesign(radaris_url, http):
    """What spiders/sites/radaris.yaml reads of one result page and one profile in each layout."""
    first, last = popular_name()
    results, profile = f"{radaris_url}/people/{first}-{last}", radaris_url + radaris.listing_url(handful()[0])
    lists, records = {}, {}
    for layout in ("v1", *REDESIGNS):
        configure(radaris_url, layout=layout)
        lists[layout] = extract_list(DEFINITION, await fetch(http, results))
        records[layout] = extract_detail(DEFINITION, await fetch(http, profile))

    def card_fields(layout: str) -> set[str]:
        return set().union(*(filled(c) for c in lists[layout].candidates))

    assert len(lists["v1"].candidates) == radaris.PAGE_SIZE and lists["v1"].next_url
    assert card_fields("v1") == {"url", "full_name", "age", "aliases", "locations"}
    assert filled(records["v1"]) >= {"full_name", "age", "aliases", "addresses", "phones", "emails", "relatives"}
    for layout in ("structural", "jsonld"):  # nothing at all (and so no next page: the engine stops on no cards)
        assert not lists[layout].candidates and not filled(records[layout]), layout
    partial = lists["partial"]  # the cards are still found, their links and names read, not all the rest
    assert [c["url"] for c in partial.candidates] == [c["url"] for c in lists["v1"].candidates]
    assert partial.next_url == lists["v1"].next_url and card_fields("partial") == card_fields("v1") - {"age"}
    places = {layout: sum(len(c["locations"]) for c in lists[layout].candidates) for layout in ("v1", "partial")}
    assert places["partial"] < places["v1"]  # "Has lived in" reworded: only "Lives in" is read
    detail = filled(records["partial"])
    assert {"full_name", "phones", "addresses"} <= detail and not detail & {"age", "aliases", "emails", "relatives"}
