"""spiders/sites/fastpeople.yaml on saved sandbox pages: the exact records."""

import pytest
from site_pages import page

from crawler.extraction import detail_not_found, extract_detail, extract_list, listing_from_record, load_definition


@pytest.fixture(scope="module")
def site():
    return load_definition("spiders/sites/fastpeople.yaml")


def test_result_page_candidates_and_next_page(site):
    result = extract_list(site, page("fastpeople", "list", "http://fp.test/name/john-smith"))
    assert len(result.candidates) == 10
    assert result.candidates[:2] == [
        {
            "url": "http://fp.test/john-smith_id_G1907458810551624685",
            "full_name": "John Smith",
            "age": 90,
            "locations": ["Dayton, OH"],
        },
        {
            "url": "http://fp.test/john-smith_id_G9375843353636496008",
            "full_name": "John Charles Smith",
            "age": 87,
            "locations": ["Buffalo, NY"],
        },
    ]
    assert len({c["url"] for c in result.candidates}) == 10
    assert result.next_url == "http://fp.test/name/john-smith/page/2"
    assert not result.empty and not result.no_results


def test_last_page_has_no_next_page(site):
    result = extract_list(site, page("fastpeople", "list_last", "http://fp.test/name/john-smith/page/3"))
    assert len(result.candidates) == 3  # 23 records, 10 a page
    assert result.next_url is None


def test_no_results_page_is_empty_by_the_sites_own_marker(site):
    result = extract_list(site, page("fastpeople", "no_results", "http://fp.test/name/zebulon-qxyzzy"))
    assert (result.candidates, result.next_url, result.empty, result.no_results) == ([], None, True, True)


def test_detail_record_despite_jsonld_defects_and_cfemail(site):
    response = page("fastpeople", "detail", "http://fp.test/john-smith_id_G9375843353636496008")
    assert not detail_not_found(site, response)
    assert extract_detail(site, response) == {
        "full_name": "John Charles Smith",
        "age": 87,
        "aliases": ["Jack Smith"],
        "addresses": [
            "8544 Sunset Blvd, Buffalo NY 14254",
            "5286 River Rd, Nashville TN 37224",
            "3053 Oak Ave, Omaha NE 68125",
        ],
        "locations": ["Buffalo, NY", "Nashville, TN", "Omaha, NE"],
        "phones": ["(402) 555-0150", "(716) 555-0153"],
        "emails": ["smith.john33@mail.example.com", "smith.john500@example.com", "smith.john585@example.com"],
        "relatives": ["Jason Smith", "Joseph Smith"],
    }


def test_detail_name_comes_from_jsonld_with_its_capitalised_key_page(site):
    """The JSON-LD block is read although the FAQ block after it ends in '};' (strict json.loads fails)."""
    html = page("fastpeople", "detail", "http://fp.test/x").text.replace(
        "<h1 class='fullname'>John Charles Smith</h1>", ""
    )
    response = page("fastpeople", "detail", "http://fp.test/x").replace(body=html.encode())
    assert extract_detail(site, response)["full_name"] == "John Charles Smith"


def test_page_not_found_with_status_200(site):
    response = page("fastpeople", "not_found", "http://fp.test/x-y_id_G1111111111111111111")
    assert detail_not_found(site, response)
    assert extract_detail(site, response)["full_name"] is None


def test_listing_from_record(site):
    record = extract_detail(site, page("fastpeople", "detail", "http://fp.test/john-smith_id_G9375843353636496008"))
    listing = listing_from_record(record, "fastpeople", "scan-1", "http://fp.test/john-smith_id_G9375843353636496008")
    assert (listing.site, listing.full_name, listing.age, listing.relatives) == (
        "fastpeople",
        "John Charles Smith",
        87,
        ["Jason Smith", "Joseph Smith"],
    )
    assert listing.emails[0] == "smith.john33@mail.example.com"
