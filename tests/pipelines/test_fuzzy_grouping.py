"""The dedup pipeline's fuzzy grouping takes its age tolerance from MATCH_AGE_TOLERANCE."""

import pytest

from crawler.items import PersonListing

pytestmark = pytest.mark.integration


def listing(scan_id, n, age):
    return PersonListing(
        site="directory",
        scan_id=scan_id,
        listing_url=f"http://127.0.0.1:8100/person/A{n:06d}",
        full_name="Sam Jones",
        age=age,
        phones=["(217) 555-0177"],
    )


@pytest.mark.parametrize(("tolerance", "grouped"), [("1", False), ("2", True)])
async def test_ages_two_apart_group_only_when_the_setting_allows(make_chain, db, scan, tolerance, grouped):
    first, second = listing(scan, 1, 40), listing(scan, 2, 42)
    async with make_chain(MATCH_AGE_TOLERANCE=tolerance) as chain:
        await chain.push(first)
        await chain.push(second)
    assert (first.listing_group == second.listing_group) is grouped
    merges = db.execute("SELECT count(*) FROM listing_merges WHERE scan_id = %s", (scan,)).fetchone()[0]
    assert merges == (1 if grouped else 0)
