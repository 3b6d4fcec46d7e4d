"""Masking on real sandbox pages: nothing personal survives condense_html, and nothing reaches the LLM.

The pages are the sandbox broker apps' own (fastpeople, truepeople, radaris, thatsthem; every layout,
v1 and v2 through the client too; result lists and detail pages of several people), served in process
over real HTTP. Leaks are looked for against the whole synthetic population: every name word (first,
middle, last, aliases: relatives are people of it too), e-mail, phone digits, street line, city and ZIP.
"""

from __future__ import annotations

import json
import re

import pytest
from aiohttp.test_utils import TestClient, TestServer

import sandbox.sites  # noqa: F401 - registers the broker apps
from crawler.ai import LLMClient, LocalCache, assert_masked, condense_html, mask_text
from crawler.ai.masking import EMAIL_RE
from crawler.observability.logs import register_pii
from sandbox.brokers import fastpeople, radaris, thatsthem, truepeople
from sandbox.brokers.common import long_street
from sandbox.brokers.control import LAYOUTS
from sandbox.population import CITIES, default_population
from sandbox.server import SERVICES, build_app

pytestmark = pytest.mark.unit

POPULATION = default_population()
SITES = {"fastpeople": fastpeople, "truepeople": truepeople, "radaris": radaris, "thatsthem": thatsthem}
# no defences in the way: these tests read pages, the defences have tests of their own
CONFIG = {"rate_limit_per_minute": 0}
SITE_CONFIG = {"truepeople": {"interstitial": False, "burst_limit": 0}}
PEOPLE_PER_SITE = (0, 17, 123)  # indexes among each site's listed people


def search_path(site: str, person) -> str:
    first, last = person.first_name, person.last_name
    return {
        "fastpeople": f"/name/{first.lower()}-{last.lower()}",
        "truepeople": f"/results?name={first}+{last}",
        "radaris": f"/people/{first}-{last}",
        "thatsthem": f"/name/{first}-{last}",
    }[site]


def _name_words() -> set[str]:
    words = set()
    for person in POPULATION.people:
        for value in (person.first_name, person.middle_name, person.last_name, *person.aliases):
            words.update(w.lower() for w in re.split(r"[^A-Za-z']+", value or "") if len(w) >= 2)
    return words


NAME_WORDS_RE = re.compile(
    r"(?<![A-Za-z])(?:" + "|".join(sorted(_name_words(), key=len, reverse=True)) + r")(?![A-Za-z])", re.I
)
STREETS = {
    variant.lower()
    for person in POPULATION.people
    for address in person.addresses
    for variant in (address.street, long_street(address.street))
}
STREET_NAMES = {" ".join(street.split()[1:]) for street in STREETS}  # "oak ave", without the number
CITY_RE = re.compile(r"(?<![A-Za-z])(?:" + "|".join(re.escape(city) for city, *_ in CITIES) + r")(?![A-Za-z])", re.I)
EMAIL_PARTS = {e.split("@")[0].lower() for p in POPULATION.people for e in p.emails if len(e.split("@")[0]) >= 4}
PHONE_LIKE_RE = re.compile(r"\d{3}\D{0,3}\d{4}")  # 555-0123, 2175550123, (217) 555-0123
TAG_RE = re.compile(r"<[^>]*>")


def leaks(text: str, digits: bool = True) -> list[str]:
    """What of the population ``text`` shows: kinds and the value found (synthetic people only)."""
    found = []
    words = {m.group().lower() for m in NAME_WORDS_RE.finditer(text)}
    found += [f"name word {w!r}" for w in sorted(words)]
    found += [f"e-mail {m.group()!r}" for m in EMAIL_RE.finditer(text)]
    lowered = text.lower()
    found += [f"e-mail local part {p!r}" for p in EMAIL_PARTS if p in lowered]
    found += [f"phone-like {m.group()!r}" for m in PHONE_LIKE_RE.finditer(text)]
    found += [f"street {s!r}" for s in STREET_NAMES if s in lowered]
    found += [f"city {m.group()!r}" for m in CITY_RE.finditer(text)]
    # every number in the text itself (ages, house numbers, ZIPs, years) is masked; markup may hold
    # digits (hashed class names), text may not
    content = TAG_RE.sub(" ", text) if digits else ""
    found += [f"digits {m.group()!r} in text" for m in re.finditer(r"\d+", content)]
    return found


async def fetch_pages(site: str, layout: str) -> list[tuple[str, str, str]]:
    """(kind, path, html) of result and detail pages of several people of the site."""
    module = SITES[site]
    listed = [p for p in POPULATION.people if module.listing_url(p)]
    pages = []
    async with TestClient(TestServer(build_app(SERVICES[site], {}))) as client:
        reply = await client.post("/_sandbox/config", json={"layout": layout, **CONFIG, **SITE_CONFIG.get(site, {})})
        assert reply.status == 200, await reply.text()
        for index in PEOPLE_PER_SITE:
            person = listed[index]
            for kind, path in (("list", search_path(site, person)), ("detail", module.listing_url(person))):
                reply = await client.get(path, allow_redirects=False)
                assert reply.status == 200, (site, layout, path, reply.status)
                pages.append((kind, path, await reply.text()))
    return pages


CASES = [(site, layout) for site in SITES for layout in ("v1", "v2")]
ALL_LAYOUTS = [(site, layout) for site in SITES for layout in LAYOUTS]  # the redesigns healing meets


@pytest.mark.parametrize("site, layout", ALL_LAYOUTS)
async def test_condensed_pages_show_no_personal_value_but_keep_labels_and_structure(site, layout):
    for kind, _path, html in await fetch_pages(site, layout):
        assert leaks(html), "the raw page must show the people (else this test checks nothing)"
        condensed = condense_html(html)
        assert leaks(condensed) == [], (site, layout, kind)
        assert_masked(condensed)  # the client's own last check agrees
        # labels reach the model: detail pages label their phones; result lists at least ages or places
        label = r"\bphones?\b" if kind == "detail" else r"\b(?:age|lives|location|records?|results?|found)\b"
        assert re.search(label, condensed, re.I), (site, layout, kind)
        assert "[NAME]" in condensed and (kind == "list" or "[PHONE]" in condensed)
        assert re.search(r'<\w+[^>]* class="[^"]+"', condensed) and "<main>" in condensed  # tags and classes
        assert "<script" not in condensed or "application/ld+json" in condensed
        assert len(condensed) < len(html)


@pytest.mark.parametrize("site, layout", CASES)
async def test_nothing_the_llm_double_received_holds_a_seeded_value(site, layout, stub, clock):
    client = LLMClient.from_settings(
        {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": stub.url, "HEAL_LLM_MAX_CALLS_PER_HOUR": "100"},
        cache=LocalCache(),
        clock=clock,
    )
    pages = await fetch_pages(site, layout)
    # as scans of these people would: their values registered, so the client's last check looks for them
    listed = [p for p in POPULATION.people if SITES[site].listing_url(p)]
    for index in PEOPLE_PER_SITE:
        person = listed[index]
        register_pii(person.full_name, *person.emails, *(p.number for p in person.phones), person.current.city)
    await stub.script(*[{"content": {"selector": "h1"}}] * len(pages))
    schema = {"type": "object", "properties": {"selector": {"type": "string"}}, "required": ["selector"]}
    for kind, _path, html in pages:
        answer = await client.complete_json(
            "masking", f"Find the fields of this {kind} page.", condense_html(html), schema, None
        )
        assert answer is not None, (site, layout, kind)  # masked pages are not refused
    received = await stub.received()
    assert len(received) == len(pages)
    for body in received:
        for message in body["messages"]:
            assert leaks(message["content"]) == []
        assert leaks(json.dumps(body), digits=False) == []  # the rest of the request
    await client.aclose()


def test_mask_text_types_each_kind_of_value():
    text = (
        "Smith, John M. (67 years old) lives at 1234 OAK AVE, SPRINGFIELD, IL 62701. "
        "Phone: (217) 555-0123 Mobile; e-mail john.smith@example.org. Born October 1958. "
        "Possible Relatives: Mary Smith, Robert J Smith"
    )
    assert mask_text(text) == (
        "[NAME] ([NUMBER] years old) lives at [ADDRESS], [CITY_STATE] [ZIP]. "
        "Phone: [PHONE] Mobile; e-mail [EMAIL]. Born October [NUMBER]. "
        "Possible Relatives: [NAME], [NAME]"
    )


@pytest.mark.parametrize(
    "text, masked",
    [
        ("Current Address 1234 Oak Avenue Springfield IL 62701", "Current Address [ADDRESS] [CITY_STATE] [ZIP]"),
        ("Kansas City, MO 64101", "[CITY_STATE] [ZIP]"),
        ("Also known as Jim Smith", "Also known as [NAME]"),
        ("in their 40s", "in their [NUMBER]s"),
        ("Lives in Springfield, IL", "Lives in [CITY_STATE]"),
        ("Linda A. Smith", "[NAME]"),
        ("see /find/person/abc-john-smith", "see /find/person/[X]"),
        ("PO Box 42, Peoria", "[ADDRESS], [NAME]"),
        ("Kansas City", "[NAME]"),
        ("City: Kansas City", "City: [NAME]"),
    ],
)
def test_mask_text_cases(text, masked):
    assert mask_text(text) == masked


def test_mask_text_masks_known_values_even_lower_case_or_label_words():
    masked = mask_text("page by jane page, reach 217.555.0199", known_values=["Jane Page", "(217) 555-0199"])
    assert masked == "[NAME] by [NAME] [NAME], reach [PHONE]"


def test_labels_alone_are_kept():
    for label in ("Phone Numbers", "Email Addresses", "Possible Relatives", "Also Known As", "Current Address", "AKA"):
        assert mask_text(label) == label


def test_condense_html_drops_noise_and_masks_attributes():
    html = """<html><head><title>John Smith</title><style>.x{}</style>
    <script type="application/ld+json">{"@type": "Person", "name": "John Smith", "age": 44,
     "telephone": ["217-555-0123"]};</script></head>
    <body><!-- John Smith --><svg><text>John</text></svg><script>var who = "John Smith";</script>
    <form action="/removal?who=john-smith"><input type="hidden" name="csrf" value="s3cr3t">
    <input name="email" value="john@example.org"></form>
    <div id="card-1" class="card person" data-name="john smith" data-section="phones" style="color:red"
         onclick="go('john')"><a href="https://broker.test/p/John/Smith/123?ref=john">John Smith</a>
    <img src="/photos/john-smith.jpg" alt="Photo of John Smith"><span itemprop="telephone">217-555-0123</span></div>
    </body></html>"""
    condensed = condense_html(html)
    assert leaks(condensed) == [] and "john" not in condensed.lower()
    assert "s3cr3t" not in condensed and "style=" not in condensed and "onclick" not in condensed
    assert '"@type": "Person"' in condensed and '"name": "[NAME]"' in condensed and '"age": "[NUMBER]"' in condensed
    assert '<div id="card-1" class="card person" data-name="[VALUE]" data-section="phones">' in condensed
    assert '<a href="/p/[X]/[X]/[N]?ref=[X]">[NAME]</a>' in condensed
    assert '<span itemprop="telephone">[PHONE]</span>' in condensed
    assert "<title" not in condensed and "<svg" not in condensed and "<style" not in condensed


def test_condense_html_keeps_a_few_of_many_alike_siblings_and_respects_max_chars():
    rows = "".join(f'<tr class="row"><td class="name">Person {n}</td></tr>' for n in range(40))
    condensed = condense_html(f"<table><tbody>{rows}</tbody></table>")
    assert condensed.count('<tr class="row">') == 3 and "<!-- 37 more tr.row -->" in condensed
    big = "".join(f'<section class="s{n}"><p>Text</p></section>' for n in range(2000))
    assert len(condense_html(big, max_chars=5000)) <= 5000
    assert condense_html("") == "" and condense_html("   ") == ""
