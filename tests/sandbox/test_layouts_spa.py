"""The spa app's redesigns for self-healing extraction (``structural``, ``jsonld``, ``partial``), rendered in Chromium.

Each must list the same people at the same URLs in the same order as v1 (with v1's "Show more results"
paging), carry every v1 value of a profile in its v1 text, keep the "no results" and "not found" texts,
and really differ: the v1 site definition (spiders/sites/spa.yaml) reads less of them, nothing at all of
``structural`` and ``jsonld``. v1 and v2 themselves stay byte for byte as they were.
"""

from __future__ import annotations

import hashlib
import json
import re
import urllib.request
from collections import Counter
from pathlib import Path
from urllib.parse import quote_plus, urlsplit

import pytest
from scrapy.http import HtmlResponse

from crawler.extraction import extract_detail, extract_list, load_definition
from crawler.extraction.engine import visible_text
from sandbox.brokers import spa
from sandbox.brokers.spa_assets import app_js
from sandbox.population import default_population

ROOT = Path(__file__).resolve().parents[2]
POPULATION = default_population()
REDESIGNS = ("structural", "jsonld", "partial")
UNLIMITED = 100_000
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="system Chromium missing: /usr/bin/chromium (apt-get install chromium)"
)
# what the spa.yaml page actions wait for, on a result page and on a profile
RESULTS_READY = "[data-qa-result], [data-qa-empty], [data-qa-error]"
PROFILE_READY = "[data-qa-person], [data-qa-error]"
MORE_SHOWN = (
    "n => document.querySelectorAll('[data-qa-result]').length > n || !!document.querySelector('[data-qa-error]')"
)
# where each layout's result page links its people (jsonld's JSON-LD is checked beside its <ul>)
RESULT_LINKS = {
    "v1": "[data-qa-results] [data-qa-result] a[data-qa-name]::attr(href)",
    "structural": "table tbody tr td a::attr(href)",
    "jsonld": "main ul li a::attr(href)",
    "partial": "[data-qa-results] article a::attr(href)",
}
# sha256 of the v1 and v2 scripts as served before the redesigns were added
SCRIPT_SHA256 = {
    "v1": "dd7a49a7451e7ed8f7f81cb265e7217864648621430df0e0391e40568b692801",
    "v2": "563dd1cebda3975068a2ef7cd9f378b850b1c0fe1dacf4c76e72c38ede5eb0fb",
}


def configure(base: str, **config) -> dict:
    request = urllib.request.Request(
        f"{base}/_sandbox/config", data=json.dumps(config).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture
def spa_url(sandbox):
    """The site without its rate limit (the tests make many API calls), back to v1 and its defaults afterwards."""
    configure(sandbox["spa"], layout="v1", rate_limit_per_minute=UNLIMITED)
    yield sandbox["spa"]
    configure(sandbox["spa"], layout="v1", rate_limit_per_minute=spa.DEFAULT_RATE_LIMIT)


@pytest.fixture
async def page(spa_url):
    """A Chromium page whose context has accepted the terms; the test fails on any script error."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page()
            errors = []
            tab.on("pageerror", lambda error: errors.append(str(error)))
            await tab.goto(spa_url + "/")
            await tab.click("[data-qa-tos-accept]")
            await tab.wait_for_selector("[data-qa-tos-modal]", state="detached")
            yield tab
            assert errors == []
        finally:
            await browser.close()


async def render(page, url: str, ready: str, status: int = 200) -> HtmlResponse:
    """The DOM the app rendered at ``url`` once ``ready`` shows, as the crawler reads it."""
    response = await page.goto(url)
    assert response.status == status, (url, response.status)
    await page.wait_for_selector(ready)
    return HtmlResponse(url, body=(await page.content()).encode(), encoding="utf-8")


async def load_all(page) -> None:
    """Press "Show more results" until it hides, as spa.yaml's page action does, waiting for each page's rows."""
    more = page.locator("[data-qa-load-more]")
    while await more.count() and await more.is_visible():
        shown = await page.locator("[data-qa-result]").count()
        await more.click()
        await page.wait_for_function(MORE_SHOWN, arg=shown)


async def results(page, base: str, q: str, loc: str = "", everything: bool = True) -> HtmlResponse:
    url = f"{base}/search?q={quote_plus(q)}&loc={quote_plus(loc)}"
    first = await render(page, url, RESULTS_READY)
    if not everything:
        return first
    await load_all(page)
    return HtmlResponse(url, body=(await page.content()).encode(), encoding="utf-8")


def json_ld(response: HtmlResponse) -> list[dict]:
    return [json.loads(s) for s in response.css("script[type='application/ld+json']::text").getall()]


def path_of(url: str) -> str:
    return urlsplit(url).path


def listed_paths(first: str, last: str, state: str | None = None, city: str | None = None) -> list[str]:
    """Ground truth: the site's listings for a search, in the API's (population) order."""
    return [u for p in POPULATION.search(first, last, state, city) if (u := spa.listing_url(p))]


def popular_name() -> tuple[str, str]:
    (first, last), _ = Counter((p.first_name, p.last_name) for p in POPULATION.people).most_common(1)[0]
    return first, last


def handful() -> list:
    """Listed people with every kind of value (relatives listed and not), and sparse ones (no aliases or
    relatives; no e-mail or middle name), so every shape of a profile is shown."""
    listed = [p for p in POPULATION.people if spa.listing_url(p)]

    def relatives_listed(p) -> set[bool]:
        return {bool(spa.listing_url(POPULATION.get(r))) for r in p.relatives}

    rich = [p for p in listed if p.aliases and len(p.phones) > 1 and len(p.emails) > 1 and len(p.addresses) > 2]
    rich = [p for p in rich if relatives_listed(p) == {True, False}][:2]
    no_family = next(p for p in listed if not p.aliases and not p.relatives)
    no_email = next(p for p in listed if not p.emails and not p.middle_name)
    return [*rich, no_family, no_email]


def v1_values(person) -> dict[str, list[str]]:
    """The profile's values as v1 writes them."""
    return {
        "name": [spa.display_name(person)],
        "phones": [spa.phone(p.number) for p in person.phones],
        "emails": list(person.emails),
        "addresses": [a.line() for a in person.addresses],
        "relatives": [spa.display_name(POPULATION.get(r)) for r in person.relatives],
        "aliases": list(person.aliases),
    }


def element_texts(node) -> set[str]:
    """The visible text of the node and of each element in it: a value must be some element's whole text."""
    return {visible_text(n) for n in node.xpath("descendant-or-self::*[not(self::script or self::style)]")}


def without_class(html: str) -> str:
    return re.sub(r' class="[^"]*"', "", html)


def test_v1_and_v2_scripts_are_served_byte_for_byte_as_before():
    for layout, digest in SCRIPT_SHA256.items():
        assert hashlib.sha256(app_js(layout, spa.TOS_COOKIE, spa.TOS_VERSION).encode()).hexdigest() == digest
    assert len({app_js(layout, spa.TOS_COOKIE, spa.TOS_VERSION) for layout in ("v1", "v2", *REDESIGNS)}) == 5


@needs_chromium
async def test_result_pages_list_the_same_people_in_the_same_order_with_v1_paging(spa_url, page):
    first, last = popular_name()
    city = next(p.current for p in POPULATION.search(first, last) if spa.listing_url(p))
    searches = [
        (f"{first} {last}", "", listed_paths(first, last)),
        (f"{first} {last}", city.state, listed_paths(first, last, city.state)),
    ]
    assert len(searches[0][2]) > 2 * spa.PAGE_SIZE  # three API pages: two presses of "Show more results"
    people = {spa.listing_url(p): p for p in POPULATION.people}
    for q, loc, expected in searches:
        v1_first = await results(page, spa_url, q, loc, everything=False)
        v1_more = without_class(v1_first.css("[data-qa-load-more]").get())
        v1 = await results(page, spa_url, q, loc)
        assert v1.css(RESULT_LINKS["v1"]).getall() == expected
        for layout in REDESIGNS:
            configure(spa_url, layout=layout)
            first_page = await results(page, spa_url, q, loc, everything=False)
            assert first_page.css(RESULT_LINKS[layout]).getall() == expected[: spa.PAGE_SIZE], (layout, loc)
            assert without_class(first_page.css("[data-qa-load-more]").get()) == v1_more  # the same paging control
            every = await results(page, spa_url, q, loc)
            assert every.css(RESULT_LINKS[layout]).getall() == expected, (layout, loc)
            if layout == "jsonld":  # the ItemList holds each card's teaser, as v1 writes it
                (listing,) = json_ld(every)
                items = listing["itemListElement"]
                assert [path_of(i["url"]) for i in items] == expected
                assert [i["position"] for i in items] == list(range(1, len(items) + 1))
                for item in items:
                    person, card = people[path_of(item["url"])], item["item"]
                    teaser = spa.teaser(person)
                    assert card["name"] == teaser["name"] and card["description"] == teaser["age_range"]
                    places = [f"{a['addressLocality']}, {a['addressRegion']}" for a in card["address"]]
                    assert places == [teaser["location"], *teaser["past_locations"]]
            else:  # each row or card shows the teaser's values in their v1 text
                for row, path in zip(every.css("[data-qa-result]"), expected, strict=True):
                    teaser, texts = spa.teaser(people[path]), element_texts(row)
                    assert {teaser["name"], teaser["age_range"], teaser["location"], *teaser["past_locations"]} <= texts
            configure(spa_url, layout="v1")
    for layout in ("v1", *REDESIGNS):  # the same "no results" text everywhere
        configure(spa_url, layout=layout)
        empty = await results(page, spa_url, "Zyxw Qqqq", "IL")
        assert empty.css("[data-qa-empty]::text").getall() == ["No results found for Zyxw Qqqq"], layout
        assert not empty.css("[data-qa-result]")
        assert all(not block.get("itemListElement") for block in json_ld(empty))


@needs_chromium
async def test_every_layout_shows_each_v1_value_of_a_profile(spa_url, page):
    for person in handful():
        values, url = v1_values(person), spa_url + spa.listing_url(person)
        for layout in ("v1", *REDESIGNS):
            configure(spa_url, layout=layout)
            profile = await render(page, url, PROFILE_READY)
            article = profile.css("[data-qa-person]")
            assert article.attrib["data-qa-person"] == spa.listing_url(person).rsplit("/", 1)[1]
            age = re.search(r"\bAge:? (\d+)\b|\b(\d+) years old\b", visible_text(article[0]))
            assert age and int(age.group(1) or age.group(2)) == person.age, layout
            if layout == "jsonld":  # the markup holds the name and the age, the JSON-LD the rest
                assert profile.css("h1::text").get() == values["name"][0]
                (data,) = json_ld(profile)
                assert data["@type"] == "Person" and data["name"] == values["name"][0]
                assert path_of(data["url"]) == spa.listing_url(person)
                assert data.get("telephone", []) == values["phones"]
                assert data.get("email", []) == values["emails"]
                assert data.get("alternateName", []) == values["aliases"]
                assert [r["name"] for r in data.get("relatedTo", [])] == values["relatives"]
                lines = [
                    f"{a['streetAddress']}, {a['addressLocality']}, {a['addressRegion']} {a['postalCode']}"
                    for a in data.get("address", [])
                ]
                assert lines == values["addresses"]
            else:
                texts = element_texts(profile.xpath("//body")[0])
                for key, expected in values.items():
                    assert set(expected) <= texts, (layout, key)
            configure(spa_url, layout="v1")


@needs_chromium
async def test_every_layout_keeps_the_not_found_page(spa_url, page):
    for layout in ("v1", *REDESIGNS):
        configure(spa_url, layout=layout)
        missing = await render(page, f"{spa_url}/person/AAAAAAAAAAA", PROFILE_READY, status=404)
        assert missing.css("[data-qa-error]::text").getall() == ["Not found"], layout
        assert not missing.css("[data-qa-person]") and not json_ld(missing)


def filled(record: dict) -> set[str]:
    return {key for key, value in record.items() if value not in (None, "", [], ())}


@needs_chromium
async def test_the_v1_definition_reads_less_of_every_redesign(spa_url, page):
    definition = load_definition(ROOT / "spiders" / "sites" / "spa.yaml")
    first, last = popular_name()
    person = handful()[0]
    read = {}
    for layout in ("v1", *REDESIGNS):
        configure(spa_url, layout=layout)
        listing = extract_list(definition, await results(page, spa_url, f"{first} {last}"))
        record = extract_detail(definition, await render(page, spa_url + spa.listing_url(person), PROFILE_READY))
        cards = listing.candidates
        places = sum(len(c.get("locations") or []) for c in cards)
        read[layout] = ([path_of(c["url"]) for c in cards if c.get("url")], set().union(*map(filled, cards)), places)
        read[layout] += (filled(record),)
    urls, card_fields, places, detail_fields = read["v1"]
    assert urls == listed_paths(first, last) and {"url", "full_name", "age_range", "locations"} <= card_fields
    assert {"full_name", "age", "aliases", "addresses", "phones", "emails", "relatives"} <= detail_fields
    for layout in ("structural", "jsonld"):  # nothing read at all
        assert read[layout] == ([], set(), 0, set()), layout
    partial_urls, partial_card_fields, partial_places, partial_detail_fields = read["partial"]
    assert partial_urls == urls  # the cards and their links are still found ...
    assert partial_card_fields == card_fields - {"age_range"} and partial_places < places  # ... not all their values
    assert {"full_name", "addresses", "emails"} <= partial_detail_fields < detail_fields
    assert not partial_detail_fields & {"age", "aliases", "phones", "relatives"}
