"""Heuristic relocation (crawler.healing: fingerprint, candidates, selectors, relocate, heal) on the sandbox's
redesigned layouts, from saved pages, with no LLM.

``fixtures/<site>.json.gz`` holds pages the sandbox served (``bench/healing.py --save``; the spa pages as
Chromium rendered them) for every layout: ``{kind: {layout: [[url, html], ...]}}``; ``<site>-300.json.gz``
the same for other people (``--offset 300``): the heuristics must not fit one set of values. As in the bench, the
selector memory is learned from the v1 pages, a heal sees the first ``HEAL_PAGES`` pages of a layout, and
the healed definition is measured on all of them against what the v1 definition reads on v1 (values
normalised, list fields as sets). A wrong value is counted apart from a missing one: it is the worse.
"""

from __future__ import annotations

import gzip
import json
from functools import cache
from pathlib import Path

import pytest
from lxml import html as lxml_html
from scrapy.http import HtmlResponse

from crawler.extraction import load_definition
from crawler.extraction.engine import extract_list
from crawler.healing import values
from crawler.healing.candidates import Series, page_series
from crawler.healing.fingerprint import label_of, label_text
from crawler.healing.heal import _definition, heal_detail, heal_list, missing_fields
from crawler.healing.memory import SelectorMemory
from crawler.healing.relocate import content_words, spec_labels
from crawler.healing.selectors import roots_of, selector_for
from tools import healing_accuracy as accuracy
from tools.healing_accuracy import learn, records

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).parent / "fixtures"
ROOT = Path(__file__).resolve().parents[2]
SITES = ("fastpeople", "truepeople", "radaris", "thatsthem", "spa")
PEOPLE = ("", "-300")  # the fixture sets: the first people listed, and people from 300 on
CHANGED = ("v2", "structural", "jsonld", "partial")
HEAL_PAGES = 4
# floors a little under what these pages measure (1.00 everywhere but truepeople's JSON-LD result cards,
# 0.98: its "deceased" badge is outside the JSON it reads); v2 of the spa keeps v1's data-qa attributes
FLOOR = 0.95
MAX_WRONG_SHARE = 0.01  # over every changed layout, as the issue asks
MAX_WRONG_SHARE_ONE = 0.02  # one layout


@cache
def fixture(site: str) -> dict:
    with gzip.open(FIXTURES / f"{site}.json.gz", "rb") as handle:
        return json.loads(handle.read())


def pages(site: str, kind: str, layout: str, people: str = "") -> list[HtmlResponse]:
    return [
        HtmlResponse(url, body=body.encode(), encoding="utf-8") for url, body in fixture(site + people)[kind][layout]
    ]


@cache
def definition(site: str):
    return load_definition(ROOT / "spiders" / "sites" / f"{site}.yaml")


@cache
def memory(site: str, kind: str, people: str = "") -> dict:
    """What SelectorMemory learns from the v1 pages, as heals read it."""
    store = SelectorMemory()
    learn(store, definition(site), kind, pages(site, kind, "v1", people))
    return store.as_relocation_memory(site, kind)


def compare(kind: str, truth: list, got: list) -> tuple[int, int, int]:
    """(right, wrong, missing) values; result pages compared card by card."""
    score = accuracy.compare(kind, truth, got)
    return score.ok, score.wrong, score.missing


@cache
def measure(site: str, kind: str, layout: str, people: str = "") -> tuple[int, int, int]:
    site_definition = definition(site)
    truth = records(site_definition, kind, pages(site, kind, "v1", people))
    responses = pages(site, kind, layout, people)[: len(truth)]
    heal = (heal_detail if kind == "detail" else heal_list)(
        site_definition.raw, responses[:HEAL_PAGES], memory(site, kind, people)
    )
    healed = _definition(heal.definition)
    return compare(kind, truth[: len(responses)], records(healed, kind, responses))


# ---- relocation on the redesigns ---------------------------------------------------------------------


@pytest.mark.parametrize("people", PEOPLE)
@pytest.mark.parametrize("kind", ["detail", "list"])
@pytest.mark.parametrize("site", SITES)
def test_unchanged_v1_pages_trigger_no_heal(site, kind, people):
    raw, responses = definition(site).raw, pages(site, kind, "v1", people)[:HEAL_PAGES]
    assert missing_fields(raw, kind, responses, memory(site, kind, people)) == []
    if kind == "list":
        assert any(extract_list(definition(site), r).candidates for r in responses)


@pytest.mark.parametrize("people", PEOPLE)
@pytest.mark.parametrize("layout", CHANGED)
@pytest.mark.parametrize("kind", ["detail", "list"])
@pytest.mark.parametrize("site", SITES)
def test_heuristics_relocate_the_fields_of_every_redesign(site, kind, layout, people):
    right, wrong, missing = measure(site, kind, layout, people)
    total = right + wrong + missing
    assert total > 0
    assert right / total >= FLOOR, (right, wrong, missing)
    assert wrong / total <= MAX_WRONG_SHARE_ONE, (right, wrong, missing)


def test_wrong_values_stay_under_one_percent_over_all_redesigns():
    found = [
        measure(site, kind, layout, people)
        for site in SITES
        for kind in ("detail", "list")
        for layout in CHANGED
        for people in PEOPLE
    ]
    wrong, total = sum(f[1] for f in found), sum(sum(f) for f in found)
    assert wrong / total <= MAX_WRONG_SHARE, (wrong, total)


def test_a_heal_is_verified_and_a_field_without_candidates_is_refused():
    """A field with nothing like it on the pages stays unhealed with its reason, never guessed."""
    raw = json.loads(json.dumps(definition("radaris").raw))
    raw["detail"]["fields"]["emails"] = {"css": "span.no-such-thing::text"}
    responses = [
        HtmlResponse(r.url, body=r.text.replace("@", " at ").encode(), encoding="utf-8")
        for r in pages("radaris", "detail", "structural")[:HEAL_PAGES]
    ]
    heal = heal_detail(raw, responses, memory("radaris", "detail"))
    assert "emails" not in heal.proposals and "emails" in heal.failed
    assert "phones" in heal.proposals and heal.verified["phones"] >= 1


# ---- labels ------------------------------------------------------------------------------------------


def element(markup: str, xpath: str):
    return lxml_html.fromstring(markup).xpath(xpath)[0]


@pytest.mark.parametrize(
    ("markup", "xpath", "label"),
    [
        ("<dl><dt>Phones</dt><dd>1</dd><dd>2</dd><dt>AKA</dt><dd>x</dd></dl>", "//dd[2]", "phones"),
        ("<dl><dt>Phones</dt><dd>1</dd><dt>AKA</dt><dd>x</dd></dl>", "//dd[2]", "aka"),
        ("<table><tr><th>Age:</th><td>45</td></tr></table>", "//td", "age:"),
        (
            "<table><thead><tr><th>Name</th><th>Lives in</th></tr></thead>"
            "<tbody><tr><td><a>x</a></td><td>y</td></tr></tbody></table>",
            "//tbody//td[2]",
            "lives in",
        ),
        ("<div><span class='label'>Address:</span> 1 Oak St<br>Omaha, NE</div>", "//div", "address"),
        ("<div><h2>Phone Numbers</h2><ul><li><a>1</a></li></ul></div>", "//a", "phone numbers"),
        ("<div><span class='k'>Lives in</span><span class='v'>Dayton, OH</span></div>", "//span[2]", "lives in"),
        ("<div><ul data-qa-previous-locations=''><li>Boise, ID</li></ul></div>", "//li", "previous locations"),
        ("<section data-section='phones'><div><a>1</a></div></section>", "//a", "phones"),
        ("<div><a>Mail</a> <br> <a>x</a></div>", "//a[2]", None),
    ],
)
def test_label_of_finds_the_label_a_node_sits_under(markup, xpath, label):
    found, _ = label_of(element(markup, xpath))
    assert (found.rstrip(":") if found else None) == (label.rstrip(":") if label else None)


def test_a_persons_name_or_value_is_never_a_label():
    assert label_text("John Smith") is None
    assert label_text("Dayton, OH") is None
    assert label_text("Also Seen As") == "also seen as"
    found, _ = label_of(element("<div><h1>John Smith</h1><p>45</p></div>", "//p"))
    assert found is None
    # a value in an attribute is no label: only markers and section names are
    found, _ = label_of(element("<div data-person-name='John Smith'><p>45</p></div>", "//p"))
    assert found is None


def test_labels_name_the_same_thing_across_wordings():
    assert content_words("Previous Addresses") == content_words("Past addresses") == content_words("Current address")
    assert content_words("Possible Relatives") == content_words("related to")
    assert content_words("Relatives") != content_words("Possible Associates")
    assert spec_labels({"regex": "Full Name: (.+?) (?:Current Address)"}) == ["full name"]
    assert spec_labels({"regex": "is (\\d+) years old"}) == []
    assert spec_labels({"xpath": ".//dt[normalize-space()='Lives in']/following-sibling::dd[1]"}) == ["lives in"]


# ---- selectors ---------------------------------------------------------------------------------------


def _series(responses: list, label: str, tag: str) -> Series:
    found = [s for s in page_series(responses).values() if s.label == label and s.key[1][-1].split(".")[0] == tag]
    assert len(found) == 1, found
    return found[0]


def _pages(*bodies: str) -> list[HtmlResponse]:
    return [HtmlResponse(f"http://x/{i}", body=f"<html><body>{b}</body></html>".encode()) for i, b in enumerate(bodies)]


def test_selectors_select_exactly_the_series_nodes_on_every_page():
    responses = _pages(
        "<dl><dt>Phones</dt><dd>(402) 555-0175</dd><dd>(402) 555-0176</dd><dt>AKA</dt><dd>Jack Smith</dd></dl>",
        "<dl><dt>AKA</dt><dd>Jon Smith</dd><dt>Phones</dt><dd>(208) 555-0157</dd></dl>",
    )
    series = _series(responses, "phones", "dd")
    spec = selector_for(series, roots_of(responses), many=True)
    assert "xpath" in spec and "nth" not in spec["xpath"]
    for response, wanted in zip(responses, (2, 1), strict=True):
        assert [s.root for s in response.xpath(spec["xpath"])] == series.elements[responses.index(response)]
        assert len(series.elements[responses.index(response)]) == wanted


def test_no_selector_when_none_selects_exactly():
    """Two lists under one class, told apart by nothing stable: refuse rather than over-select."""
    responses = _pages("<ul class='x'><li>Jack Smith</li></ul><ul class='x'><li>Omaha Beach</li></ul>")
    series = Series(("html", ("ul.x", "li"), None), "html")
    series.elements[0] = [responses[0].selector.root.xpath("//li")[0]]
    assert selector_for(series, roots_of(responses)) is None


def test_a_table_column_is_selected_by_its_heading():
    responses = _pages(
        "<table><thead><tr><th>Name</th><th>Age</th></tr></thead><tbody>"
        "<tr><td><a href='/p/1'>John Smith</a></td><td>45</td></tr>"
        "<tr><td><a href='/p/2'>Jane Doe</a></td><td>52</td></tr></tbody></table>"
    )
    series = _series(responses, "age", "td")
    spec = selector_for(series, roots_of(responses))
    assert "th[normalize-space()='Age']" in spec["xpath"]
    assert responses[0].xpath(spec["xpath"] + "/text()").getall() == ["45", "52"]


# ---- values ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("full_name", "John C. Smith", True),
        ("full_name", "Dayton, OH", False),
        ("full_name", "Phone Numbers", False),
        ("full_name", "John", False),
        ("relatives", "Mary-Ann O'Neil", True),
        ("phones", "(402) 555-0175", True),
        ("phones", "402-555-0150", True),
        ("phones", "(402) 555-01XX", False),
        ("phones", "402-555-0150 Wireless", False),
        ("emails", "j.smith@example.org", True),
        ("emails", "j***@example.org", False),
        ("locations", "St. Louis, MO", True),
        ("locations", "Lives In Dayton, OH", False),
        ("locations", "NE Houston, TX", False),
        ("addresses", "8544 Sunset Blvd, Buffalo, NY 14254", True),
        ("addresses", "Buffalo, NY", False),
        ("age", 45, True),
        ("age", 1939, False),
        ("birth_year", 1939, True),
        ("birth_month", 10, True),
        ("birth_month", 13, False),
        ("age_range", [40, 49], True),
    ],
)
def test_values_look_like_their_kind(field, value, ok):
    assert values.valid(field, value) is ok


def test_a_signature_keeps_the_shape_of_values_not_the_values():
    signature = values.signature("phones", ["(402) 555-0175", "(208) 555-0157"])
    assert signature == {
        "kind": "phone",
        "length": [14, 14],
        "classes": ["digit", "punct", "space"],
        "valid": 1.0,
        "count": [2, 2],
    }
    merged = values.merge_signature(signature, values.signature("phones", ["402-555-0150"]))
    assert merged["length"] == [12, 14] and merged["count"] == [1, 2]
    assert "555" not in json.dumps(merged)
