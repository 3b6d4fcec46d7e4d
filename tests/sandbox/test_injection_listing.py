"""The script-injection listing: one thatsthem record's name carries an HTML/JS payload, served as text.

It must survive as literal text all the way to the scraped value (so the page's browser test sees what an
attacker would send) and still match its person (so a scan finds it); every other record is unchanged.
"""

from __future__ import annotations

import urllib.request

import pytest
from scrapy.http import HtmlResponse

from crawler.extraction import load_definition
from crawler.extraction.engine import extract_detail
from crawler.matching.names import compare_names, fold
from sandbox.brokers import thatsthem
from sandbox.population import default_population

pytestmark = pytest.mark.e2e

PERSON = default_population().get(thatsthem.INJECTED_PERSON)


def page(url: str) -> HtmlResponse:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return HtmlResponse(url=url, body=reply.read(), encoding="utf-8")


def test_the_payload_person_is_listed_and_alone_with_their_name():
    assert PERSON is not None and thatsthem.listing_url(PERSON)
    assert default_population().search(PERSON.first_name, PERSON.last_name) == [PERSON]
    assert "<script>" in thatsthem.INJECTION_PAYLOAD and "onerror=" in thatsthem.INJECTION_PAYLOAD


def test_the_record_shows_the_payload_as_text_and_still_matches(sandbox):
    base = sandbox["thatsthem"]
    record = page(base + thatsthem.listing_url(PERSON))
    assert not record.css("main script, main img")  # escaped: no element came out of it
    assert thatsthem.INJECTION_PAYLOAD.replace('"', "&quot;") not in record.text  # escaped as text, not markup
    assert "&lt;script&gt;" in record.text

    scraped = extract_detail(load_definition("spiders/sites/thatsthem.yaml"), record)
    assert thatsthem.INJECTION_PAYLOAD in scraped["full_name"]
    comparison = compare_names(
        fold(PERSON.first_name), fold(PERSON.middle_name), fold(PERSON.last_name), scraped["full_name"], []
    )
    assert (comparison.level, comparison.middle) == ("exact", "agree")

    search = page(f"{base}/name/{PERSON.first_name}-{PERSON.last_name}/{PERSON.current.state}")
    names = search.css("h2.ThatsThem-record-name a::text").getall()
    assert names == [thatsthem.display_name(PERSON)] and thatsthem.INJECTION_PAYLOAD in names[0]


def test_no_other_record_carries_it():
    other = next(p for p in default_population().people if p.id != PERSON.id and p.middle_name)
    assert thatsthem.INJECTION_PAYLOAD not in thatsthem.display_name(other)
