"""fastpeople's redesigns ``structural``, ``jsonld`` and ``partial`` against v1, over HTTP against the sandbox.

Every layout must carry v1's data (the same results in the same order, the same detail URLs, v1's values in
v1's text formats, v1's pagination and "could not find" pages), and the redesigns must really differ: the v1
site definition (spiders/sites/fastpeople.yaml) reads less, or nothing, on them. Expected values come from the
population, written as v1 writes them.
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
from sandbox.brokers import fastpeople
from sandbox.brokers.common import cf_decode
from sandbox.population import default_population

pytestmark = pytest.mark.e2e

POPULATION = default_population()
LAYOUTS = ("v1", "structural", "jsonld", "partial")
REDESIGNS = LAYOUTS[1:]
SEARCHES = ["/name/john-smith", "/name/james-brown", "/name/mary-johnson_tx"]


def configure(base: str, **changes) -> None:
    request = urllib.request.Request(
        base + "/_sandbox/config", data=json.dumps(changes).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


@pytest.fixture
def base(sandbox):
    """The fastpeople site from its defaults, without its rate limit (the test reads many pages), restored after."""
    url = sandbox["fastpeople"]
    configure(url, defaults=True, reset=True, rate_limit_per_minute=0)
    yield url
    configure(url, defaults=True, reset=True)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


async def get(http, url: str) -> str:
    async with http.get(url, allow_redirects=False) as response:
        text = await response.text()
        assert response.status == 200, text[:300]
        return text


def ld_blocks(page: Selector) -> list:
    """The page's JSON-LD blocks, v1's ``};`` defect tolerated."""
    return [
        json.loads(text.strip().rstrip(";")) for text in page.css("script[type='application/ld+json']::text").getall()
    ]


def result_links(layout: str, page: Selector) -> list[str]:
    """The detail URLs of a result page, read the way each layout shows them."""
    if layout == "structural":
        assert page.css("table th") and not page.css(".card")
        return page.css("table tbody tr td:first-child a::attr(href)").getall()
    if layout == "jsonld":
        (item_list,) = ld_blocks(page)
        links = [item["url"] for item in item_list["itemListElement"]]
        assert page.css("main ul li a::attr(href)").getall() == links  # the bare list says the same
        return links
    return page.css(".people-list .card::attr(data-link)").getall()


async def all_links(http, base: str, layout: str, path: str) -> tuple[list[str], list[str]]:
    """(every detail URL of a search, page by page, each page's pagination markup)."""
    links, navs, url = [], [], base + path
    while url:
        page = Selector(text=await get(http, url))
        links += result_links(layout, page)
        navs.append(page.css("nav.pagination").get())
        following = page.css("nav.pagination a.next::attr(href)").get()
        url = base + following if following else None
    return links, navs


def people() -> list:
    """A handful of listed people covering every section: aliases, e-mails, past addresses, relatives listed and
    not, and someone without aliases or past addresses."""
    listed = [p for p in POPULATION.people if fastpeople.listing_url(p)]
    rich = [
        p
        for p in listed
        if p.aliases and p.emails and len(p.addresses) > 1 and len(p.relatives) > 1
        if any(fastpeople.listing_url(POPULATION.get(r)) for r in p.relatives)
        and not all(fastpeople.listing_url(POPULATION.get(r)) for r in p.relatives)
    ]
    plain = [p for p in listed if not p.aliases and len(p.addresses) == 1]
    return rich[:3] + plain[:2]


def v1_values(person) -> dict:
    """The person's values as v1 writes them (tests/sandbox/test_brokers_a.py checks v1 against the same)."""
    relatives = [POPULATION.get(r) for r in person.relatives]
    return {
        "name": " ".join(filter(None, [person.first_name, person.middle_name, person.last_name])),
        "age": person.age,
        "phones": [p.formatted() for p in person.phones],
        "emails": person.emails,
        "addresses": [(a.street, f"{a.city} {a.state} {a.zip}") for a in person.addresses],
        "relatives": [f"{r.first_name} {r.last_name}" for r in relatives if r],
        "relative_links": [fastpeople.listing_url(r) for r in relatives if r and fastpeople.listing_url(r)],
        "aliases": person.aliases,
    }


def read_detail(layout: str, page: Selector) -> dict:
    """The values of a detail page, read the way each layout shows them."""
    if layout == "jsonld":
        (data,) = ld_blocks(page)
        assert data["@type"] == "Person"
        age_line = page.css("main p::text").get()
        return {
            "name": data["name"],
            "age": int(age_line.split(" years old")[0]),
            "phones": data["telephone"],
            "emails": data["email"],
            "addresses": [
                (a["streetAddress"], f"{a['addressLocality']} {a['addressRegion']} {a['postalCode']}")
                for a in data["address"]
            ],
            "relatives": [r["name"] for r in data["relatedTo"]],
            "relative_links": [r["url"] for r in data["relatedTo"] if "url" in r],
            "aliases": data["alternateName"],
        }
    if layout == "structural":

        def values(term: str, query: str = "::text") -> list[str]:
            xpath = f"//dl/dd[preceding-sibling::dt[1][.='{term}']]"
            return [v for dd in page.xpath(xpath) for v in dd.css(query).getall()]

        def lines(term: str) -> list[tuple[str, str]]:
            return [
                tuple(dd.xpath("text()").getall())
                for dd in page.xpath(f"//dl/dd[preceding-sibling::dt[1][.='{term}']]")
            ]

        relatives = [*values("Possible relatives", "a::text"), *values("Possible relatives", "span::text")]
        return {
            "name": page.css("h1::text").get(),
            "age": int(values("Age")[0]),
            "phones": values("Phones", "a::text"),
            "emails": [cf_decode(e) for e in values("Emails", "a::attr(data-cfemail)")],
            "addresses": lines("Current address") + lines("Past addresses"),
            "relatives": sorted(relatives),
            "relative_links": values("Possible relatives", "a::attr(href)"),
            "aliases": values("AKA"),
        }
    ids = {"v1": ("aka-links", "previous-address-links", "relative-links")}
    aka, previous, relatives = ids.get(layout, ("aka-section", "past-addresses", "relatives-section"))
    age_class = "age" if layout == "v1" else "detail-label"
    return {
        "name": page.css("h1.fullname::text").get(),
        "age": int(page.xpath(f"normalize-space(//h2[@class='{age_class}']/following-sibling::text()[1])").get()),
        "phones": page.css("#phone_number_section li a::text").getall(),
        "emails": [cf_decode(e) for e in page.css("#email_section a::attr(data-cfemail)").getall()],
        "addresses": [
            tuple(li.xpath("text()").getall()) for li in page.css(f"#current_address_section li, #{previous} li")
        ],
        "relatives": sorted(page.css(f"#{relatives} li a::text, #{relatives} li span::text").getall()),
        "relative_links": page.css(f"#{relatives} li a::attr(href)").getall(),
        "aliases": page.css(f"#{aka} li::text").getall(),
    }


async def test_every_layout_lists_the_same_detail_urls_in_the_same_order(base, http):
    v1 = {}
    for layout in LAYOUTS:
        configure(base, layout=layout)
        for path in SEARCHES:
            links, navs = await all_links(http, base, layout, path)
            v1.setdefault(path, (links, navs))
            assert (links, navs) == v1[path], (layout, path)  # pagination markup unchanged as well
    assert len(v1["/name/john-smith"][0]) > 20 and len(v1["/name/john-smith"][1]) == 3
    assert all(links for links, _ in v1.values())


async def test_every_layout_keeps_v1s_could_not_find_pages_and_is_deterministic(base, http):
    paths = ["/name/nobody-atall", "/name/john-smith/page/9", "/x-y_id_G1234567890123456789"]
    v1 = [await get(http, base + path) for path in paths]
    assert "could not find any records" in v1[0] and "could not find the page" in v1[1] and v1[2] == v1[1]
    person = people()[0]
    for layout in REDESIGNS:
        configure(base, layout=layout)
        assert [await get(http, base + path) for path in paths] == v1, layout
        for path in [fastpeople.listing_url(person), "/name/john-smith/page/2"]:
            assert await get(http, base + path) == await get(http, base + path), (layout, path)


async def test_every_layout_detail_page_carries_the_v1_values(base, http):
    chosen = people()
    assert len(chosen) == 5
    for layout in LAYOUTS:
        configure(base, layout=layout)
        for person in chosen:
            page = Selector(text=await get(http, base + fastpeople.listing_url(person)))
            expected = v1_values(person)
            found = read_detail(layout, page)
            if layout != "jsonld":
                expected["relatives"] = sorted(expected["relatives"])
            assert found == expected, (layout, person.id)
            if layout != "jsonld":  # the values are visible text too, in v1's formats
                text = visible_text(page.css("main")[0])
                for value in [str(person.age), *expected["phones"], *expected["aliases"], *expected["relatives"]]:
                    assert value in text, (layout, value)
                for street, city_line in expected["addresses"]:
                    assert f"{street} {city_line}" in text, layout
            else:
                assert page.css("h1::text").get() == expected["name"]


async def test_the_v1_definition_reads_less_or_nothing_on_the_redesigns(base, http):
    """The v1 YAML through the extraction engine, as a crawl would run it: the drift self-healing must notice."""
    site = load_definition("spiders/sites/fastpeople.yaml")
    person = people()[0]
    detail_url, list_url = base + fastpeople.listing_url(person), base + "/name/john-smith"
    read = {}
    for layout in LAYOUTS:
        configure(base, layout=layout)
        listing = extract_list(site, HtmlResponse(list_url, body=(await get(http, list_url)).encode()))
        record = extract_detail(site, HtmlResponse(detail_url, body=(await get(http, detail_url)).encode()))
        fields = {key for key, value in record.items() if value}
        card_fields = {key for card in listing.candidates for key, value in card.items() if value}
        read[layout] = (len(listing.candidates), card_fields, fields)
    all_fields = {"full_name", "age", "aliases", "addresses", "locations", "phones", "emails", "relatives"}
    assert read["v1"] == (10, {"url", "full_name", "age", "locations"}, all_fields)
    # structural: no card, and only Cloudflare's e-mail markup (the CDN's, not the design's) still reads
    assert read["structural"] == (0, set(), {"emails"})
    # jsonld: no card; the definition's own JSON-LD fallbacks still give the name and the phones
    assert read["jsonld"] == (0, set(), {"full_name", "phones"})
    # partial: the cards are found but not their place; the age, relatives and all but one address are lost
    assert read["partial"][:2] == (10, {"url", "full_name", "age"})
    assert read["partial"][2] < all_fields and {"age", "relatives"}.isdisjoint(read["partial"][2])
