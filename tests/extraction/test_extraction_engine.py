"""The extraction engine's parts: definition errors, filters, templates, lenient JSON-LD, JSON bodies."""

import json
from pathlib import Path

import pytest
from scrapy.http import HtmlResponse, Request, TextResponse

from crawler.extraction import DefinitionError, extract_detail, extract_list, load_definition, load_definitions
from crawler.extraction.definitions import parse_base_urls, validate
from crawler.extraction.filters import apply
from crawler.extraction.paths import parse_lenient, resolve
from crawler.extraction.templates import render, render_params

MINIMAL = {
    "id": "mini",
    "name": "Mini",
    "base_url": "http://mini.test",
    "search": [{"requires": ["first_name", "last_name"], "url": "/s/{first_name|slug}-{last_name|slug}"}],
    "list": {"items": {"css": "div.r"}, "fields": {"url": {"css": "a::attr(href)"}}},
    "detail": {"fields": {"full_name": "h1::text"}},
}


def write(tmp_path: Path, definition: dict, name: str = "mini") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(json.dumps(definition))  # JSON is YAML
    return path


def broken(change) -> dict:
    definition = json.loads(json.dumps(MINIMAL))
    change(definition)
    return definition


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["detail"]["fields"].update(age={"css": 42}), "detail.fields.age.css: expected a string"),
        (lambda d: d["detail"]["fields"].update(agee="x"), "detail.fields: unknown key 'agee'"),
        (lambda d: d["detail"]["fields"].pop("full_name"), "detail.fields: missing required key 'full_name'"),
        (
            lambda d: d["detail"]["fields"].update(age={"css": "x", "filters": ["nope"]}),
            "detail.fields.age.filters.0: unknown filter 'nope'",
        ),
        (lambda d: d["search"][0].update(url="/s/{frist_name}"), "search.0.url: unknown template field 'frist_name'"),
        (lambda d: d.update(render="chrome"), "render: expected one of http, browser"),
        (lambda d: d["list"]["fields"].pop("url"), "list.fields: missing required key 'url'"),
        (lambda d: d.update(id="other"), "id: must equal the file name 'mini'"),
        (
            lambda d: d.update(politeness={"requests_per_minute": "fast"}),
            "politeness.requests_per_minute: expected a number",
        ),
    ],
)
def test_definition_errors_name_file_key_and_reason(tmp_path, change, message):
    path = write(tmp_path, broken(change))
    with pytest.raises(DefinitionError) as error:
        load_definition(path)
    assert str(error.value).startswith(f"{path}: {message}")
    assert "\n" not in str(error.value)


def test_invalid_yaml_names_the_line(tmp_path):
    path = tmp_path / "mini.yaml"
    path.write_text("id: mini\nname: [unclosed\n")
    with pytest.raises(DefinitionError, match=r"mini.yaml: line \d+: invalid YAML"):
        load_definition(path)


def test_every_shipped_definition_loads_and_digest_ignores_layout(tmp_path):
    definitions = load_definitions()
    assert {"fastpeople", "thatsthem"} <= set(definitions)
    for site_id, definition in definitions.items():
        assert definition.id == site_id and len(definition.sha256) == 64
    validate(MINIMAL, "mini.yaml")  # the minimal example is valid
    a = load_definition(write(tmp_path, MINIMAL))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "mini.yaml").write_text("# a comment\n" + json.dumps(MINIMAL, indent=4))
    assert load_definition(tmp_path / "b" / "mini.yaml").sha256 == a.sha256


def test_filters():
    assert apply(
        ["5e2d34373e2d6d3c6d2a37212d6e372a2336357d"[:2] + "".join(f"{b ^ 0x5E:02x}" for b in b"jane@x.org")],
        ["cfemail"],
    ) == ["jane@x.org"]
    assert apply(
        ["Springfield IL 62701", "1 OAK ST, SPRINGFIELD, IL 62701", "Kansas City, MO", "nowhere"], ["city_state"]
    ) == ["Springfield, IL", "Springfield, IL", "Kansas City, MO"]
    assert apply(["Smith, John M.", "Jane Doe"], ["last_first"]) == ["John M. Smith", "Jane Doe"]
    assert apply(["in their 40s", "Age 42"], ["parse_age_text"]) == [[40, 49], 42]
    assert apply(["a, b ,c"], [{"split": ","}]) == ["a", "b", "c"]
    assert apply(["a", "b"], [{"join": "-"}]) == ["a-b"]
    assert apply(["Age: 42"], [{"remove": "age:"}, "int"]) == [42]
    assert apply(["Oct", "13", "x"], ["month"]) == [10]
    assert apply(["(217) 555-0123"], ["digits"]) == ["2175550123"]


def test_templates():
    values = {
        "first_name": "Mary Ann",
        "last_name": "O'Neil",
        "city": "Kansas City",
        "state": "MO",
        "phone": "+12175550123",
        "email": "",
        "age": "",
    }
    assert render("/name/{first_name|slug}-{last_name|slug}_{city|slug}-{state|lower}", values, encode=True) == (
        "/name/mary-ann-o-neil_kansas-city-mo"
    )
    assert render("/{phone|dashed}/{phone|paren}", values) == "/217-555-0123/(217) 555-0123"
    assert render("/n/{first_name}", values, encode=True) == "/n/Mary%20Ann"
    assert render_params({"name": "{first_name} {last_name}", "email": "{email}"}, values) == "name=Mary+Ann+O%27Neil"


def test_lenient_json_and_case_insensitive_paths():
    assert parse_lenient('{"a": {"HomeLocation": {"x": 1}}};') == {"a": {"HomeLocation": {"x": 1}}}
    assert parse_lenient('{"a": [1, 2,],}') == {"a": [1, 2]}
    assert json.loads('{"a": 1}') == parse_lenient('<!-- {"a": 1} -->')
    data = {"Person": [{"homeLocation": {"city": "A"}}, {"HomeLocation": {"city": "B"}}]}
    assert resolve(data, "person.*.homelocation.city") == ["A", "B"]
    assert resolve(data, "Person.1.HomeLocation.city") == ["B"]


def test_json_bodies_list_and_detail(tmp_path):
    definition = broken(
        lambda d: d.update(
            search=[{"requires": ["first_name"], "url": "/api", "json": True}],
            list={
                "items": {"json": "results"},
                "fields": {
                    "url": {"json": "id", "filters": [{"replace": ["/^/", "/p/"]}]},
                    "full_name": {"json": "Name"},
                },
                "fetch": {"template": "/api/person/{value}", "from": "_id"},
                "next_page": {"json": "next_cursor", "template": "/api?cursor={value}"},
            },
            detail={
                "fields": {
                    "full_name": {"json": "person.name"},
                    "phones": {"json": "person.phones.*.number"},
                    "age_range": {"json": "person.age_text", "filters": ["parse_age_text"]},
                }
            },
        )
    )
    definition["list"]["fields"]["_id"] = {"json": "id"}
    site = load_definition(write(tmp_path, definition))
    body = json.dumps({"results": [{"id": "abc", "name": "Jane Doe"}], "next_cursor": "c2"}).encode()
    headers = {"Content-Type": "application/json"}
    listing = extract_list(
        site, TextResponse("http://mini.test/api", body=body, headers=headers, request=Request("http://mini.test/api"))
    )
    assert listing.candidates == [
        {
            "url": "http://mini.test/p/abc",
            "full_name": "Jane Doe",
            "_id": "abc",
            "fetch_url": "http://mini.test/api/person/abc",
        }
    ]
    assert listing.next_url == "http://mini.test/api?cursor=c2"
    body = json.dumps(
        {"person": {"name": "Jane Doe", "phones": [{"number": "1"}, {"number": "2"}], "age_text": "in their 40s"}}
    )
    record = extract_detail(site, TextResponse("http://mini.test/api/person/abc", body=body.encode(), headers=headers))
    assert record == {"full_name": "Jane Doe", "phones": ["1", "2"], "age_range": (40, 49)}


def test_pagination_by_disabled_marker(tmp_path):
    definition = broken(
        lambda d: d["list"].update(next_page={"css": "li.next a::attr(href)", "last": {"css": "li.next.disabled"}})
    )
    site = load_definition(write(tmp_path, definition))
    html = "<div class='r'><a href='/p/1'>x</a></div><ul><li class='next{}'><a href='/s/2'>Next</a></li></ul>"
    more = extract_list(site, HtmlResponse("http://mini.test/s", body=html.format("").encode()))
    last = extract_list(site, HtmlResponse("http://mini.test/s", body=html.format(" disabled").encode()))
    assert (more.next_url, last.next_url) == ("http://mini.test/s/2", None)


def test_empty_page_without_marker_is_not_no_results():
    site = load_definition("spiders/sites/fastpeople.yaml")
    result = extract_list(
        site, HtmlResponse("http://fp.test/name/x-y", body=b"<html><body><h1>New layout</h1></body></html>")
    )
    assert result.empty and not result.no_results


def test_base_url_overrides():
    assert parse_base_urls("fastpeople=http://127.0.0.1:1/, thatsthem=http://h:2") == {
        "fastpeople": "http://127.0.0.1:1",
        "thatsthem": "http://h:2",
    }
