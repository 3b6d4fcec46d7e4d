"""spiders/sites/radaris.yaml on saved sandbox pages (tests/sites/capture.py): exact records."""

from pathlib import Path

import pytest
from scrapy.http import HtmlResponse

from crawler.extraction import extract_detail, extract_list, load_definition
from middlewares.blocks import GENERIC_SIGNATURES, compile_signatures, matches
from sandbox.brokers import radaris
from sandbox.population import default_population

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "radaris"
BASE = "http://127.0.0.1:8404"


@pytest.fixture(scope="module")
def definition():
    return load_definition(ROOT / "spiders" / "sites" / "radaris.yaml")


def page(name: str, url: str) -> HtmlResponse:
    return HtmlResponse(url=BASE + url, body=(FIXTURES / name).read_bytes(), encoding="utf-8")


def present(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None and v != []}


def listed_john_smiths():
    population = default_population()
    return [p for p in population.search("John", "Smith") if radaris.listing_url(p)]


def test_first_page_candidates_and_an_enabled_next_item(definition):
    result = extract_list(definition, page("results_1.html", "/people/John-Smith"))
    people = listed_john_smiths()
    assert [c["url"] for c in result.candidates] == [BASE + radaris.listing_url(p) for p in people[:10]]
    assert result.next_url == BASE + "/people/John-Smith/2"  # page 1: prev is disabled, next is not
    first = result.candidates[0]
    person = people[0]
    assert first["age"] == person.age
    assert first["aliases"] == person.aliases
    assert first["locations"] == [f"{person.current.city}, {person.current.state}", *radaris.past_cities(person)]


def test_last_page_is_marked_by_the_disabled_next_item(definition):
    result = extract_list(definition, page("results_3.html", "/people/John-Smith/3"))
    assert [c["url"] for c in result.candidates] == [BASE + radaris.listing_url(p) for p in listed_john_smiths()[20:]]
    assert result.next_url is None and not result.empty


def test_no_people_found_is_a_genuine_empty_result(definition):
    result = extract_list(definition, page("results_empty.html", "/people/Zyxw-Qqqq"))
    assert result.candidates == [] and result.empty


def test_profile_sections_under_headings(definition):
    record = extract_detail(definition, page("profile.html", "/p/John/Smith/U961264473"))
    assert present(record) == {
        "full_name": "John L Smith",
        "age": 40,
        "aliases": ["Jack Smith"],
        "locations": ["Chicago, IL", "Dayton, OH", "Portland, OR"],
        "addresses": [
            "3632 Mill Rd, Chicago, IL 60670",
            "2454 Main St, Dayton, OH 45481",
            "3630 Church St, Portland, OR 97205",
        ],
        "phones": ["312-555-0181", "937-555-0176"],
        "emails": ["john.smith311@example.org", "jsmith742@example.com"],
        # relatives, linked or not; the "Possible Associates" section is not relatives
        "relatives": ["Stephanie E Smith", "Patricia Smith", "Michelle Smith", "John R Smith"],
    }


def test_the_hard_403_is_rate_limited_and_a_bad_session_is_blocked(definition):
    site = compile_signatures(definition.blocks)
    generic = compile_signatures(GENERIC_SIGNATURES)
    refusal = "<h1>Access denied</h1><p>Too many requests from your network. Try again in 12 seconds.</p>"
    assert matches(site["rate_limited"], refusal)
    assert matches(site["blocked"], "<p class='error'>Invalid session</p>")
    for ordinary in ("form.html", "results_1.html", "results_empty.html", "profile.html"):
        body = (FIXTURES / ordinary).read_text()
        assert not any(matches(p, body) for p in [*site.values(), *generic.values()])
