"""truepeople's redesigns ``structural``, ``jsonld`` and ``partial`` against v1, over HTTP against the sandbox.

Every layout must carry v1's data (the same results in the same order, the same detail URLs, v1's values in
v1's text formats, v1's Next Page button, count and 404 texts, the same defences), and the redesigns must really
differ: the v1 site definition (spiders/sites/truepeople.yaml) reads less, or nothing, on them. Expected values
come from the population, written as v1 writes them.
"""

from __future__ import annotations

import json
import urllib.request

import aiohttp
import pytest
from parsel import Selector
from scrapy.http import HtmlResponse

from crawler.extraction import extract_detail, extract_list, load_definition
from crawler.extraction.engine import visible_text
from sandbox.brokers import truepeople
from sandbox.brokers.common import long_street
from sandbox.population import default_population

pytestmark = pytest.mark.e2e

POPULATION = default_population()
LAYOUTS = ("v1", "structural", "jsonld", "partial")
REDESIGNS = LAYOUTS[1:]
SEARCHES = ["/results?name=John+Smith", "/results?name=James+Brown", "/results?name=Mary+Johnson&citystatezip=TX"]


def configure(base: str, **changes) -> None:
    request = urllib.request.Request(
        base + "/_sandbox/config", data=json.dumps(changes).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


@pytest.fixture
def base(sandbox):
    """The truepeople site from its defaults, bursts allowed (the test reads many pages), restored after."""
    url = sandbox["truepeople"]
    configure(url, defaults=True, reset=True, burst_limit=0)
    yield url
    configure(url, defaults=True, reset=True)


@pytest.fixture
async def http(base):
    """A client past the interstitial: the 503's Set-Cookie carries the clearance the jar keeps."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # cookies on 127.0.0.1
        async with session.get(base + "/") as response:
            assert response.status == 503
        yield session


async def get(http, url: str, status: int = 200) -> str:
    async with http.get(url, allow_redirects=False) as response:
        text = await response.text()
        assert response.status == status, text[:300]
        return text


def ld_blocks(page: Selector) -> list:
    return [json.loads(text) for text in page.css("script[type='application/ld+json']::text").getall()]


def read_results(layout: str, page: Selector) -> list[tuple[str, str, str, bool]]:
    """(detail URL, age teaser, current city, deceased) of each result, read the way each layout shows them."""
    if layout == "structural":
        assert page.css("table th") and not page.css(".card-summary")
        return [
            (
                row.css("td:first-child a::attr(href)").get(),
                row.css("td:nth-child(2)::text").get(),
                row.css("td:nth-child(3)::text").get(),
                row.css("td:first-child ::text").getall()[-1] == "Deceased",
            )
            for row in page.css("table tbody tr")
        ]
    if layout == "jsonld":
        blocks = ld_blocks(page)
        items = blocks[0]["itemListElement"] if blocks else []
        links = page.css("main ul li")
        assert [li.css("a::attr(href)").get() for li in links] == [item["url"] for item in items]
        return [
            (
                item["url"],
                item["item"]["description"],
                "{addressLocality}, {addressRegion}".format(**item["item"]["address"][0]),
                "(Deceased)" in li.get(),
            )
            for item, li in zip(items, links, strict=True)
        ]
    value = "content-value"
    label = "content-label" if layout == "v1" else "fact-label"
    return [
        (
            card.attrib["data-detail-link"],
            card.xpath(f".//div[span[@class='{label}'][normalize-space()='Age']]/span[@class='{value}']/text()").get(),
            card.xpath(
                f".//div[span[@class='{label}'][normalize-space()='Lives in']]/span[@class='{value}']/text()"
            ).get(),
            bool(card.css("span.deceased")),
        )
        for card in page.css("div.card-summary")
    ]


def count_text(layout: str, page: Selector) -> str:
    query = {"v1": ".record-count", "partial": ".record-count", "structural": "p.results-summary", "jsonld": "h1"}
    return page.css(f"{query[layout]}::text").get()


async def all_results(http, base: str, layout: str, path: str) -> tuple[list, list[str], str]:
    """(every result of a search, page by page; each page's Next Page button; the count's text)."""
    found, buttons, url, count = [], [], base + path, None
    while url:
        page = Selector(text=await get(http, url))
        found += read_results(layout, page)
        count = count or count_text(layout, page)
        button = page.css("a#btnNextPage")
        buttons.append(button.get())
        url = base + button.attrib["href"] if button else None
    return found, buttons, count


def people() -> list:
    """A handful of listed people covering every section: aliases, e-mails, past addresses, relatives listed and
    not, someone without aliases or past addresses, and someone marked deceased."""
    listed = [p for p in POPULATION.people if truepeople.listing_url(p)]
    rich = [
        p
        for p in listed
        if p.aliases and p.emails and len(p.addresses) > 1 and len(p.relatives) > 1
        if any(truepeople.listing_url(POPULATION.get(r)) for r in p.relatives)
        and not all(truepeople.listing_url(POPULATION.get(r)) for r in p.relatives)
    ]
    plain = [p for p in listed if not p.aliases and len(p.addresses) == 1]
    dead = [p for p in rich if truepeople.is_deceased(p)]
    return [*rich[:2], *plain[:2], dead[0]]


def v1_values(person) -> dict:
    """The person's values as v1 writes them (tests/sandbox/test_brokers_a.py checks v1 against the same)."""
    relatives = [r for r in map(POPULATION.get, person.relatives) if r]
    return {
        "name": person.full_name,
        "age": person.age,
        "deceased": truepeople.is_deceased(person),
        "phones": [p.formatted() for p in person.phones],
        "emails": person.emails,
        "addresses": [(long_street(a.street), f"{a.city}, {a.state} {a.zip}") for a in person.addresses],
        "relatives": [r.full_name for r in relatives],
        "relative_links": [truepeople.listing_url(r) for r in relatives if truepeople.listing_url(r)],
        "aliases": person.aliases,
    }


def read_detail(layout: str, page: Selector) -> dict:
    """The values of a detail page, read the way each layout shows them."""
    if layout == "jsonld":
        (data,) = ld_blocks(page)
        lines = page.css("main p::text").getall()
        return {
            "name": data["name"],
            "age": int(lines[0].removeprefix("Age ")),
            "deceased": "Deceased" in lines,
            "phones": data["telephone"],
            "emails": data["email"],
            "addresses": [
                (a["streetAddress"], f"{a['addressLocality']}, {a['addressRegion']} {a['postalCode']}")
                for a in data["address"]
            ],
            "relatives": [r["name"] for r in data["relatedTo"]],
            "relative_links": [r["url"] for r in data["relatedTo"] if "url" in r],
            "aliases": data["alternateName"],
        }
    if layout == "structural":

        def cell(label: str):
            return page.xpath(f"//table//tr[th='{label}']/td")

        return {
            "name": page.css("h1::text").get(),
            "age": int(cell("Age:").xpath("text()").get()),
            "deceased": bool(page.css(".status-badge")),
            "phones": cell("Phones").css("a::text").getall(),
            "emails": cell("Emails").css("div::text").getall(),
            "addresses": [
                tuple(div.xpath("text()").getall())
                for div in [*cell("Current address").xpath("div"), *cell("Past addresses").xpath("div")]
            ],
            "relatives": cell("Relatives").xpath("div/*/text()").getall(),
            "relative_links": cell("Relatives").css("a::attr(href)").getall(),
            "aliases": cell("AKA").css("div::text").getall(),
        }
    kind, name = ("section", "oh1") if layout == "v1" else ("panel", "person-name")
    box = page.css("#personDetails")
    return {
        "name": page.css(f"h1.{name}::text").get(),
        "age": int(page.css("span.age::text").get().removeprefix("Age ")),
        "deceased": box.attrib["data-deceased"] == "true",
        "phones": page.css("[itemprop=telephone]::text").getall(),
        "emails": page.css(f".{kind}.emails div::text").getall(),
        "addresses": [tuple(div.xpath("text()").getall()) for div in page.css("[data-link-to-more=address]")],
        "relatives": page.xpath(f"//div[contains(@class, '{kind} relatives')]/*[self::a or self::b]/text()").getall(),
        "relative_links": page.css("[data-link-to-more=relative]::attr(href)").getall(),
        "aliases": page.css(f".{kind}.aliases div::text").getall(),
    }


async def test_every_layout_lists_the_same_results_in_the_same_order(base, http):
    v1 = {}
    for layout in LAYOUTS:
        configure(base, layout=layout)
        for path in SEARCHES:
            v1.setdefault(path, await all_results(http, base, layout, path))
            assert await all_results(http, base, layout, path) == v1[path], (layout, path)
    found, buttons, count = v1["/results?name=John+Smith"]
    assert len(found) > 20 and len(buttons) == 3 and count == f"{len(found)} records found for John Smith"
    assert all(found for found, _, _ in v1.values())
    # the ground truth, as tests/sandbox/test_brokers_a.py has it: everybody listed named or also known as John Smith
    johns = [
        truepeople.listing_url(p)
        for p in POPULATION.people
        if truepeople.listing_url(p)
        and "john smith" in {n.casefold() for n in [f"{p.first_name} {p.last_name}", *p.aliases]}
    ]
    assert [url for url, *_ in found] == johns


async def test_every_layout_keeps_v1s_texts_and_defences_and_is_deterministic(base, http):
    nobody = "/results?name=Nobody+Atall"
    v1_gone = await get(http, base + "/find/person/pxnosuchperson", status=404)
    async with aiohttp.ClientSession() as stranger:  # no clearance cookie
        v1_challenge = await get(stranger, base + nobody, status=503)
    person = people()[0]
    for layout in REDESIGNS:
        configure(base, layout=layout)
        page = Selector(text=await get(http, base + nobody))
        assert count_text(layout, page) == "0 records found for Nobody Atall", layout
        assert await get(http, base + "/find/person/pxnosuchperson", status=404) == v1_gone
        async with aiohttp.ClientSession() as stranger:
            assert await get(stranger, base + nobody, status=503) == v1_challenge
        for path in [truepeople.listing_url(person), "/results?name=John+Smith&page=2"]:
            assert await get(http, base + path) == await get(http, base + path), (layout, path)
    configure(base, layout="jsonld", burst_limit=2)
    for _ in range(2):
        await get(http, base + nobody)
    async with http.get(base + nobody, allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"].startswith("/InternalCaptcha?")


async def test_every_layout_detail_page_carries_the_v1_values(base, http):
    chosen = people()
    assert len(chosen) == 5 and any(truepeople.is_deceased(p) for p in chosen)
    for layout in LAYOUTS:
        configure(base, layout=layout)
        for person in chosen:
            page = Selector(text=await get(http, base + truepeople.listing_url(person)))
            expected = v1_values(person)
            assert read_detail(layout, page) == expected, (layout, person.id)
            text = visible_text(page.css("main")[0])
            assert expected["name"] in text and f"Age {person.age}" in text.replace("Age: ", "Age ")
            if layout != "jsonld":  # the values are visible text too, in v1's formats
                values = [*expected["phones"], *expected["emails"], *expected["aliases"], *expected["relatives"]]
                values += [f"{street} {city_line}" for street, city_line in expected["addresses"]]
                for value in values:
                    assert value in text, (layout, value)


async def test_the_v1_definition_reads_less_or_nothing_on_the_redesigns(base, http):
    """The v1 YAML through the extraction engine, as a crawl would run it: the drift self-healing must notice."""
    site = load_definition("spiders/sites/truepeople.yaml")
    person = people()[0]
    detail_url, list_url = base + truepeople.listing_url(person), base + "/results?name=John+Smith"
    read = {}
    for layout in LAYOUTS:
        configure(base, layout=layout)
        listing = extract_list(site, HtmlResponse(list_url, body=(await get(http, list_url)).encode()))
        record = extract_detail(site, HtmlResponse(detail_url, body=(await get(http, detail_url)).encode()))
        card_fields = {key for card in listing.candidates for key, value in card.items() if value}
        read[layout] = (len(listing.candidates), card_fields, {key for key, value in record.items() if value})
    all_fields = {"full_name", "age", "aliases", "addresses", "locations", "phones", "emails", "relatives"}
    assert read["v1"][:2] == (10, {"url", "full_name", "age_range", "locations", "deceased"})
    assert all_fields <= read["v1"][2]
    assert read["structural"] == read["jsonld"] == (0, set(), set())  # nothing at all
    # partial: the cards are found but only their link and Deceased mark read; the detail loses half its fields
    assert read["partial"][0] == 10 and read["partial"][1] <= {"url", "deceased"}
    assert read["partial"][2] & all_fields == {"age", "addresses", "locations", "phones"}
