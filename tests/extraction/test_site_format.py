"""The site format as a newcomer meets it (spiders/sites/FORMAT.md): one test per stumble met when a new
definition was written from the document alone, on small pages in tests/extraction/fixtures/."""

import json
import re
from pathlib import Path

import pytest
from extraction_pages import page

from crawler.extraction import DefinitionError, extract_detail, extract_list, marker_matches
from crawler.extraction.definitions import load_definition_text
from crawler.extraction.filters import city_state, title_case

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def definition(detail_fields=None, list_fields=None, **top):
    raw = {
        "id": "draft",
        "name": "Draft",
        "base_url": "http://draft.test",
        "search": [{"requires": ["first_name", "last_name"], "url": "/s/{first_name|slug}-{last_name|slug}"}],
        "list": {"items": {"css": "div.card"}, "fields": list_fields or {"url": {"css": "a::attr(href)"}}},
        "detail": {"fields": {"full_name": {"css": "h1::text"}, **(detail_fields or {})}},
        **top,
    }
    return load_definition_text(json.dumps(raw), "draft.yaml")


def load_error(**kwargs) -> str:
    with pytest.raises(DefinitionError) as error:
        definition(**kwargs)
    return str(error.value)


# -- `sep` and the default join of an element's text nodes


def test_an_elements_text_nodes_are_joined_by_a_space_or_by_sep():
    response = page("text_nodes")
    plain = extract_detail(definition({"addresses": {"css": "div.address"}}), response)
    assert plain["addresses"] == ["12 Oak St Springfield, IL 62701 (2019)", "9 Elm Ave Peoria, IL 61602"]
    with_sep = extract_detail(definition({"addresses": {"css": "div.address", "sep": ", "}}), response)
    assert with_sep["addresses"] == ["12 Oak St, Springfield, IL 62701, (2019)", "9 Elm Ave, Peoria, IL 61602"]


def test_sep_without_a_source_it_applies_to_is_a_load_error():
    assert load_error(detail_fields={"age": {"regex": "Age (\\d+)", "sep": ", "}}) == (
        "draft.yaml: detail.fields.age.sep: applies only with css, xpath or join"
    )


# -- page-level regex and {text: ...} markers read the visible text


def test_page_regex_reads_visible_text_not_scripts_or_styles():
    record = extract_detail(definition({"age": {"regex": "Age (\\d+)"}}), page("visible_text"))
    assert record["age"] == 45  # not the <script>'s 99, the <style>'s 77 or the <noscript>'s 12


def test_text_markers_see_decoded_entities_and_normalised_whitespace():
    response = page("visible_text")
    assert marker_matches({"text": "No records found & nothing else"}, response)  # &nbsp;, newline, &amp;
    assert marker_matches({"text": "/no records FOUND/i"}, response)
    assert marker_matches({"text": "Jane Roe"}, response)
    assert not marker_matches({"text": "Age 99"}, response)  # only in a <script>
    assert not marker_matches({"text": "var profile"}, response)
    assert not marker_matches([{"text": "Age 77"}, {"text": "Age 12"}], response)  # <style>, <noscript>


def test_card_regex_reads_the_cards_visible_text():
    site = definition(list_fields={"url": {"css": "a::attr(href)"}, "age": {"regex": "Age (\\d+)", "filters": ["int"]}})
    result = extract_list(site, page("visible_text"))
    assert [c["age"] for c in result.candidates] == [51, 63]  # inline <b> joined, the card's <script> ignored


# -- title case (and city_state, which uses it)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("McAllen", "McAllen"),
        ("MCALLEN", "McAllen"),
        ("mcallen", "McAllen"),
        ("Coeur d'Alene", "Coeur d'Alene"),
        ("COEUR D'ALENE", "Coeur D'Alene"),
        ("o'brien", "O'Brien"),
        ("JOHN'S DELI", "John's Deli"),
        ("MACDONALD", "MacDonald"),
        ("MACK", "Mack"),
        ("MACHADO", "Machado"),
        ("MACIAS", "Macias"),
        ("SMITH-JONES", "Smith-Jones"),
        ("mary-kate o'neil", "Mary-Kate O'Neil"),
        ("DeKalb", "DeKalb"),
        ("john smith iii", "John Smith III"),
        ("springfield, IL", "Springfield, IL"),
    ],
)
def test_title_case_names_and_places(text, expected):
    assert title_case(text) == expected


def test_city_state_keeps_mc_and_apostrophe_spellings():
    assert city_state("123 Oak St, McAllen, TX 78501") == "McAllen, TX"
    assert city_state("Coeur d'Alene ID 83814") == "Coeur d'Alene, ID"
    assert city_state("1 MAIN ST, MCALLEN, TX") == "McAllen, TX"
    site = definition({"locations": {"css": "ul.cities li::text", "filters": ["city_state"]}})
    assert extract_detail(site, page("text_nodes"))["locations"] == [
        "McAllen, TX",
        "Coeur d'Alene, ID",
        "MacDonald, WV",
    ]


# -- search URLs are paths


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ({"url": "search?q={last_name}"}, "url"),
        ({"form": {"page": "index.html", "fields": {"q": "{last_name}"}}}, "form.page"),
    ],
)
def test_a_search_url_without_a_leading_slash_is_a_load_error(entry, where):
    search = [{"requires": ["last_name"], **entry}]
    assert load_error(search=search) == f"draft.yaml: search.0.{where}: must start with '/' (a path joined to base_url)"


# -- list fields are read inside each card


def test_an_absolute_xpath_in_list_fields_is_a_load_error_naming_dot_slash():
    message = load_error(list_fields={"url": {"css": "a::attr(href)"}, "full_name": {"xpath": "//a/text()"}})
    assert (
        message
        == "draft.yaml: list.fields.full_name.xpath: starts at the page root: use './/' to search inside the card"
    )
    nested = {"url": {"css": "a::attr(href)"}, "age": {"any": [{"css": ".age::text"}, {"xpath": "(//span)[1]"}]}}
    assert "list.fields.age.any.1.xpath: starts at the page root" in load_error(list_fields=nested)
    for hidden in (".//a/text() | //b/text()", "normalize-space(//a)", ".//a[//b]"):  # unions, functions, predicates
        fields = {"url": {"css": "a::attr(href)"}, "full_name": {"xpath": hidden}}
        assert "starts at the page root" in load_error(list_fields=fields), hidden
    quoted = {"url": {"css": "a::attr(href)"}, "full_name": {"xpath": "string(.//a[@href='/person'])"}}
    assert definition(list_fields=quoted).id == "draft"  # a "/" inside a string is not a path
    # detail fields read the whole page: // is right there
    assert definition({"age": {"xpath": "//p[@class='age']/text()"}}).id == "draft"


def test_a_relative_xpath_reads_each_card():
    site = definition(list_fields={"url": {"css": "a::attr(href)"}, "full_name": {"xpath": ".//a/text()"}})
    assert [c["full_name"] for c in extract_list(site, page("cards")).candidates] == ["Jane Roe", "Jane A. Roe"]


# -- one value from several nodes: join


def test_join_builds_city_state_from_jsonld_parts_pairwise():
    site = definition(
        {"locations": {"join": [{"jsonld": "address.addressLocality"}, {"jsonld": "address.addressRegion"}]}}
    )
    assert extract_detail(site, page("split_address"))["locations"] == ["Springfield, IL", "Peoria, IL"]


def test_join_with_sep_builds_an_address_from_separate_elements():
    site = definition(
        {"addresses": {"join": [{"css": ".current .street::text"}, {"css": ".current .locality::text"}], "sep": " / "}}
    )
    assert extract_detail(site, page("split_address"))["addresses"] == ["77 Lake Shore Dr / Chicago, IL 60601"]


def test_join_is_validated_on_load():
    one = {"locations": {"join": [{"css": "x"}]}}
    assert load_error(detail_fields=one) == "draft.yaml: detail.fields.locations.join: expected at least 2 items"
    bad_part = {"locations": {"join": [{"css": "x"}, {"css": "y", "filters": ["nope"]}]}}
    assert load_error(detail_fields=bad_part).startswith(
        "draft.yaml: detail.fields.locations.join.1.filters.0: unknown filter 'nope'"
    )


# -- what FORMAT promises about values and options


def test_age_is_always_an_integer():
    record = extract_detail(definition({"age": {"css": "p.age::text"}}), page("split_address"))
    assert record["age"] == 45 and isinstance(record["age"], int)  # "Age: 45 (born 1980)", no filter


def test_opt_out_url_is_a_path_or_an_absolute_url():
    relative = definition(opt_out={"url": "/removal", "processing_days": 3})
    assert relative.opt_out["url"] == "http://draft.test/removal"
    assert relative.with_base_url("http://127.0.0.1:9/").opt_out["url"] == "http://127.0.0.1:9/removal"
    absolute = definition(opt_out={"url": "https://privacy.example.com/optout"})
    assert absolute.opt_out["url"] == "https://privacy.example.com/optout"
    for bad in ("removal", "//elsewhere.example/optout"):  # "//host" would be glued to base_url
        assert load_error(opt_out={"url": bad}) == (
            "draft.yaml: opt_out.url: expected a path starting with '/' (relative to base_url) or an http(s):// URL"
        )


def test_the_complete_example_in_format_md_loads():
    text = (ROOT / "spiders" / "sites" / "FORMAT.md").read_text()
    section = text.split("## A complete example", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1)
    assert load_definition_text(example, "example.yaml").id == "example"


def test_broken_regexes_in_markers_and_block_signatures_are_load_errors():
    assert load_error(blocks={"captcha": ["g-recaptcha", "/(unclosed/i"]}).startswith(
        "draft.yaml: blocks.captcha.1: invalid regex: "
    )
    detail = {"fields": {"full_name": {"css": "h1::text"}}, "not_found": [{"css": "p.e"}, {"text": "/[a-/"}]}
    assert load_error(detail=detail).startswith("draft.yaml: detail.not_found.1.text: invalid regex: ")
    split = {"aliases": {"css": "li::text", "filters": [{"split": "/(,/"}]}}
    assert load_error(detail_fields=split).startswith("draft.yaml: detail.fields.aliases.filters.0: invalid regex: ")
