"""The example spider's result filter reads names with crawler.matching.names and ages with MATCH_AGE_TOLERANCE."""

import pytest

from crawler.spider_args import parse_person
from spiders.example import result_fits

pytestmark = pytest.mark.unit

QUERY = parse_person({"first_name": "John", "last_name": "Smith", "state": "il", "age": "40"})


@pytest.mark.parametrize(
    ("name", "fits"),
    [
        ("John Smith", True),
        ("John Smith Jr.", True),
        ("Smith, John Q.", True),
        ("Dr. John Smith", True),
        ("John Smithson", False),
        ("Joan Smith", False),
        ("John", False),
    ],
)
def test_names_are_read_like_the_matcher_reads_them(name, fits):
    assert result_fits(QUERY, name, "Age 40", "Chicago, IL", age_tolerance=1) is fits


def test_age_tolerance_is_the_setting_not_a_constant():
    assert not result_fits(QUERY, "John Smith", "Age 42", "Chicago, IL", age_tolerance=1)
    assert result_fits(QUERY, "John Smith", "Age 42", "Chicago, IL", age_tolerance=2)
    assert not result_fits(QUERY, "John Smith", "Age 40", "Springfield, MO", age_tolerance=1)
