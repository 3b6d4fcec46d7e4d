"""spiders/sites/spa.yaml on the DOM Chromium rendered from the sandbox app (tests/sites/capture.py)."""

import json
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse

from crawler.extraction import extract_detail, extract_list, load_definition
from sandbox.brokers import spa
from sandbox.population import default_population

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "spa"
BASE = "http://127.0.0.1:8403"


@pytest.fixture(scope="module")
def definition():
    return load_definition(ROOT / "spiders" / "sites" / "spa.yaml")


def page(name: str, url: str) -> HtmlResponse:
    return HtmlResponse(url=BASE + url, body=(FIXTURES / name).read_bytes(), encoding="utf-8")


def present(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None and v != []}


def listed_john_smiths():
    return [p for p in default_population().search("John", "Smith") if spa.listing_url(p)]


def test_first_rendered_page_gives_masked_teasers_with_profile_urls(definition):
    result = extract_list(definition, page("search.html", "/search?q=John+Smith"))
    people = listed_john_smiths()
    assert [c["url"] for c in result.candidates] == [BASE + spa.listing_url(p) for p in people[:10]]
    assert result.candidates[0]["age_range"] == [90, 99]
    assert result.candidates[0]["locations"] == ["Dayton, OH", "Boise, ID", "Lincoln, NE", "Houston, TX"]
    assert result.next_url is None and not result.empty


def test_every_cursor_page_loaded_by_the_page_action(definition):
    result = extract_list(definition, page("search_all.html", "/search?q=John+Smith"))
    assert [c["url"] for c in result.candidates] == [BASE + spa.listing_url(p) for p in listed_john_smiths()]


def test_no_results(definition):
    result = extract_list(definition, page("search_empty.html", "/search?q=Zyxw+Qqqq&loc=IL"))
    assert result.candidates == [] and result.empty


def test_rendered_profile_record_matches_the_api(definition):
    record = extract_detail(definition, page("person.html", "/person/4qqBHPnUBvc"))
    api = json.loads((FIXTURES / "person_api.json").read_text())
    expected = {
        "full_name": "John Larry Smith",
        "age": 40,
        "aliases": ["Jack Smith"],
        "locations": ["Chicago, IL", "Dayton, OH", "Portland, OR"],
        "addresses": [
            "3632 Mill Rd, Chicago, IL 60670",
            "2454 Main St, Dayton, OH 45481",
            "3630 Church St, Portland, OR 97205",
        ],
        "phones": ["(312) 555-0181", "(937) 555-0176"],
        "emails": ["john.smith311@example.org", "jsmith742@example.com"],
        "relatives": ["Stephanie Emma Smith", "Patricia Smith", "Michelle Smith", "John Robert Smith"],
    }
    assert present(record) == expected
    # the same values the app's own API sent (unmasked, unlike the teasers)
    assert expected["addresses"] == [a["full"] for a in api["addresses"]]
    assert expected["phones"] == [p["number"] for p in api["phones"]]
    assert expected["emails"] == api["emails"] and expected["relatives"] == [r["name"] for r in api["relatives"]]


def test_hashed_class_names_are_not_used(definition):
    """A redesign renames every class: the definition reads data-qa-* attributes only."""
    text = json.dumps(definition.raw)
    assert "css-" not in text and "class" not in text


def test_a_redesign_with_other_hashed_classes_gives_the_same_records(definition):
    """Layout v2 renders results as a table and reorders the profile; the data-qa-* attributes stay."""
    v1 = extract_detail(definition, page("person.html", "/person/4qqBHPnUBvc"))
    v2 = extract_detail(definition, page("person_v2.html", "/person/4qqBHPnUBvc"))
    assert v2 == v1 and v2["full_name"] == "John Larry Smith"
    assert (FIXTURES / "person_v2.html").read_text().count("css-") == 0  # really other class names
    result = extract_list(definition, page("search_v2.html", "/search?q=John+Smith&loc=IL"))
    in_illinois = [p for p in default_population().search("John", "Smith", state="IL") if spa.listing_url(p)]
    assert [c["url"] for c in result.candidates] == [BASE + spa.listing_url(p) for p in in_illinois]
