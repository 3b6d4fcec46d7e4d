"""spiders/sites/truepeople.yaml on saved sandbox pages (tests/sites/capture.py): exact records."""

from pathlib import Path

import pytest
from scrapy.http import HtmlResponse

from crawler.extraction import extract_detail, extract_list, load_definition
from middlewares.blocks import GENERIC_SIGNATURES, compile_signatures, matches
from sandbox.brokers import truepeople
from sandbox.population import default_population

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "truepeople"
BASE = "http://127.0.0.1:8402"


@pytest.fixture(scope="module")
def definition():
    return load_definition(ROOT / "spiders" / "sites" / "truepeople.yaml")


def page(name: str, url: str) -> HtmlResponse:
    return HtmlResponse(url=BASE + url, body=(FIXTURES / name).read_bytes(), encoding="utf-8")


def present(record: dict) -> dict:
    return {k: v for k, v in record.items() if v is not None and v != []}


def listed_john_smiths():
    """The sandbox's own answer to the saved search, in the site's order."""
    return [p for p in default_population().search("John", "Smith") if truepeople.listing_url(p)]


def test_first_result_page_gives_ten_candidates_and_the_next_page(definition):
    result = extract_list(definition, page("results_1.html", "/results?name=John+Smith"))
    people = listed_john_smiths()
    assert [c["url"] for c in result.candidates] == [BASE + truepeople.listing_url(p) for p in people[:10]]
    assert result.next_url == BASE + "/results?name=John+Smith&page=2"
    assert not result.empty
    first = result.candidates[0]
    assert first["full_name"] == "John Smith" and first["deceased"] is True and first["age_range"] == [90, 99]
    assert all(c["deceased"] is False for c in result.candidates[1:])


def test_last_result_page_has_no_next_page(definition):
    result = extract_list(definition, page("results_3.html", "/results?name=John+Smith&page=3"))
    assert [c["url"] for c in result.candidates] == [
        BASE + truepeople.listing_url(p) for p in listed_john_smiths()[20:]
    ]
    assert result.next_url is None and not result.empty


def test_zero_records_found_is_a_genuine_empty_result(definition):
    result = extract_list(definition, page("results_empty.html", "/results?name=Zyxw+Qqqq&citystatezip=IL"))
    assert result.candidates == [] and result.empty and result.next_url is None


def test_detail_page_record(definition):
    record = extract_detail(definition, page("detail.html", "/find/person/px364sh8czvkwz1"))
    assert present(record) == {
        "full_name": "John L. Smith",
        "age": 40,
        "aliases": ["Jack Smith"],
        "locations": ["Chicago, IL", "Dayton, OH", "Portland, OR"],
        "addresses": [
            "3632 Mill Road, Chicago, IL 60670",
            "2454 Main Street, Dayton, OH 45481",
            "3630 Church Street, Portland, OR 97205",
        ],
        "phones": ["(312) 555-0181", "(937) 555-0176"],
        "emails": ["john.smith311@example.org", "jsmith742@example.com"],
        "relatives": ["Stephanie E. Smith", "Patricia Smith", "Michelle Smith", "John R. Smith"],
        "deceased": False,
    }


def test_deceased_marker_becomes_the_deceased_field(definition):
    record = extract_detail(definition, page("detail_deceased.html", "/find/person/pxkdbrah68scn72"))
    assert present(record) == {
        "full_name": "David Smith",
        "age": 60,
        "aliases": ["Dave Smith"],
        "locations": ["Seattle, WA", "Tampa, FL"],
        "addresses": ["7280 Lake Drive, Seattle, WA 98101", "7355 Washington Avenue, Tampa, FL 33692"],
        "phones": ["(206) 555-0172"],
        "emails": ["dsmith194@example.com", "dsmith946@mail.example.com"],
        "relatives": ["John J. Smith", "Michael S. Smith", "Andrew A. Smith", "Charles Smith", "William C. Smith"],
        "deceased": True,
    }


@pytest.mark.parametrize(("name", "kind"), [("interstitial.html", "interstitial"), ("captcha.html", "captcha")])
def test_block_pages_match_the_site_signatures(definition, name, kind):
    text = (FIXTURES / name).read_text()
    site = compile_signatures(definition.blocks)
    assert matches(site[kind], text)
    others = [k for k in site if k != kind]
    assert not any(matches(site[k], text) for k in others)
    # and no ordinary page looks like a block, to the site's signatures or the generic ones
    generic = compile_signatures(GENERIC_SIGNATURES)
    for ordinary in ("results_1.html", "detail.html", "results_empty.html"):
        body = (FIXTURES / ordinary).read_text()
        assert not any(matches(p, body) for p in [*site.values(), *generic.values()])
