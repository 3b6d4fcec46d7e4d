"""spiders/sites/thatsthem.yaml on saved sandbox pages: the exact records."""

import pytest
from site_pages import page

from crawler.extraction import extract_detail, extract_list, load_definition


@pytest.fixture(scope="module")
def site():
    return load_definition("spiders/sites/thatsthem.yaml")


def test_result_page(site):
    result = extract_list(site, page("thatsthem", "list", "http://tt.test/name/john-smith"))
    assert len(result.candidates) == 10
    assert result.candidates[:3] == [
        {
            "url": "http://tt.test/person/John-Smith/9bd2ea20b3",
            "full_name": "John C. Smith",
            "age": 87,
            "locations": ["Buffalo, NY"],
        },
        {
            "url": "http://tt.test/person/John-Smith/2c293d4214",
            "full_name": "John Smith",
            "age": 63,
            "locations": ["Lincoln, NE"],
        },
        {
            "url": "http://tt.test/person/John-Smith/ea5ed5d867",
            "full_name": "John L. Smith",
            "age": 40,
            "locations": ["Chicago, IL"],
        },
    ]
    assert result.next_url == "http://tt.test/name/John-Smith?page=2"


def test_last_page_and_past_it(site):
    last = extract_list(site, page("thatsthem", "list_last", "http://tt.test/name/John-Smith?page=3"))
    assert len(last.candidates) == 6 and last.next_url is None  # 26 results
    past = extract_list(site, page("thatsthem", "past_last", "http://tt.test/name/John-Smith?page=4"))
    assert (past.candidates, past.empty, past.no_results) == ([], True, True)


def test_no_results(site):
    result = extract_list(site, page("thatsthem", "no_results", "http://tt.test/name/zebulon-qxyzzy"))
    assert (result.candidates, result.next_url, result.empty, result.no_results) == ([], None, True, True)


def test_record_page(site):
    record = extract_detail(site, page("thatsthem", "detail", "http://tt.test/person/John-Smith/9bd2ea20b3"))
    assert record == {
        "full_name": "John C. Smith",
        "age": 87,
        "birth_month": 1,
        "birth_year": 1939,
        "aliases": ["Jack Smith"],
        "addresses": [
            "8544 SUNSET BLVD, BUFFALO, NY 14254",
            "5286 RIVER RD, NASHVILLE, TN 37224",
            "3053 OAK AVE, OMAHA, NE 68125",
        ],
        "locations": ["Buffalo, NY", "Nashville, TN", "Omaha, NE"],
        "phones": ["402-555-0150", "716-555-0153"],
        "emails": ["smith.john33@mail.example.com", "smith.john500@example.com", "smith.john585@example.com"],
        "relatives": ["Jason Smith", "Joseph Smith"],
    }
