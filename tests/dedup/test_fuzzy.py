"""Fuzzy grouping of one person's listings: names parsed and nicknames told as the matcher
does, ages within MATCH_AGE_TOLERANCE."""

import pytest

from crawler.dedup.fuzzy import FuzzyListingDedup, name_parts
from crawler.items import PersonListing

pytestmark = pytest.mark.unit

ADDRESS = "12 Main St, Springfield, IL 62701"


def listing(n, full_name, **values):
    base = {"site": "s", "scan_id": "scan", "listing_url": f"http://s/{n}", "full_name": full_name}
    return PersonListing(**{**base, **values})


def groups(dedup, *listings) -> int:
    for item in listings:
        dedup.assign(item)
    return len({item.listing_group for item in listings})


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("John Smith Jr.", ("john", "smith")),
        ("Smith, John M.", ("john", "smith")),
        ("DR. JOHN MICHAEL SMITH III", ("john", "smith")),
        ("José Núñez", ("jose", "nunez")),
    ],
)
def test_names_are_parsed_as_the_matcher_parses_them(text, parts):
    assert name_parts(text) == parts


def test_a_suffix_is_not_taken_for_the_last_name():
    same_address = {"addresses": [ADDRESS]}
    dedup = FuzzyListingDedup(0.85, 1)
    assert groups(dedup, listing(1, "John Smith Jr.", **same_address), listing(2, "John Smith", **same_address)) == 1


@pytest.mark.parametrize(("nickname", "name"), [("Sam", "Samuel"), ("Bill", "William"), ("Peggy", "Margaret")])
def test_nicknames_of_one_name_group(nickname, name):
    # a shared address is not enough for two different first names, so the nickname decides
    dedup = FuzzyListingDedup(0.85, 1)
    assert (
        groups(
            dedup,
            listing(1, f"{name} Jones", addresses=[ADDRESS]),
            listing(2, f"{nickname} Jones", addresses=[ADDRESS]),
        )
        == 1
    )


def test_different_first_names_with_a_shared_address_stay_apart():
    dedup = FuzzyListingDedup(0.85, 1)
    assert (
        groups(dedup, listing(1, "Samuel Jones", addresses=[ADDRESS]), listing(2, "Patrick Jones", addresses=[ADDRESS]))
        == 2
    )


@pytest.mark.parametrize(("tolerance", "expected_groups"), [(1, 2), (2, 1), (3, 1)])
def test_ages_two_years_apart_group_only_within_the_tolerance(tolerance, expected_groups):
    phone = {"phones": ["+12175550123"]}
    dedup = FuzzyListingDedup(0.85, tolerance)
    assert (
        groups(dedup, listing(1, "Jane Doe", age=40, **phone), listing(2, "Jane Doe", age=42, **phone))
        == expected_groups
    )
