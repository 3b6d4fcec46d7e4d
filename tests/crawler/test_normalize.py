import datetime as dt

import pytest

from crawler import normalize

UTC = dt.UTC


@pytest.mark.parametrize("raw", ["(217) 555-0123", "217.555.0123", "+1 217 555 0123", "2175550123", "1-217-555-0123"])
def test_phones_become_e164(raw):
    assert normalize.phone_e164(raw, "US") == "+12175550123"


def test_bad_phone_and_foreign_region():
    with pytest.raises(ValueError, match="phone"):
        normalize.phone_e164("12", "US")
    assert normalize.phone_e164("030 1234567", region="DE") == "+49301234567"


def test_national_numbers_for_search_forms():
    assert normalize.phone_national("+12175550123") == "2175550123"
    assert normalize.phone_national("020 7946 0018", "GB") == "2079460018"
    with pytest.raises(ValueError):
        normalize.phone_national("2175550123")  # no country code and no region


def test_emails_are_lowered_and_checked():
    assert normalize.email("  Jane.Doe+x@Mail.Example.COM ") == "jane.doe+x@mail.example.com"
    for bad in ("jane", "jane@", "jane@localhost", "jane@exa mple.com", "@example.com", "jane@-bad.com"):
        with pytest.raises(ValueError) as error:
            normalize.email(bad)
        assert bad.strip() not in str(error.value) or bad == ""


def test_addresses_are_normalised():
    assert normalize.address("  123  main street ,springfield,  il 62701") == "123 Main St, Springfield, IL 62701"
    assert normalize.address("9 NORTH oak AVENUE apt 4") == "9 N Oak Ave Apt 4"
    # with and without a comma before the state: one address (sites write both; so do healed specs)
    assert normalize.address("3632 Mill Rd, Chicago IL 60670") == "3632 Mill Rd, Chicago, IL 60670"
    assert normalize.address("3632 Mill Rd, Chicago, IL 60670") == "3632 Mill Rd, Chicago, IL 60670"
    assert normalize.address("1 Oak St Kansas City MO 64101") == "1 Oak St Kansas City MO 64101"  # no comma: unsure
    with pytest.raises(ValueError):
        normalize.address(" , ")


def test_stored_addresses_are_title_cased_like_the_sites_title_filter():
    """One title case for extraction and storage: McAllen and d'Alene survive the validate pipeline."""
    assert normalize.address("1200 n main st, McAllen, tx 78501") == "1200 N Main St, McAllen, TX 78501"
    assert normalize.address("4 Lakeview Dr, Coeur d'Alene, ID") == "4 Lakeview Dr, Coeur d'Alene, ID"
    assert normalize.address("77 MACDONALD RD, O'FALLON, MO") == "77 MacDonald Rd, O'Fallon, MO"


@pytest.mark.parametrize(
    "raw",
    [
        "2026-10-01T12:00:00Z",
        "2026-10-01T14:00:00+02:00",
        "2026-10-01T12:00:00",  # naive: UTC
        1790856000,  # epoch seconds
        1790856000000,  # epoch milliseconds
        "1790856000000",
        1790856000000000,  # epoch microseconds
        1790856000.0,
        dt.datetime(2026, 10, 1, 12, 0),
    ],
)
def test_timestamps_to_utc(raw):
    assert normalize.timestamp(raw) == dt.datetime(2026, 10, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("raw", ["yesterday", None, True, [1], 10**30])
def test_bad_timestamps(raw):
    with pytest.raises(ValueError):
        normalize.timestamp(raw)
