"""The shared notations: ``/regex/i`` patterns and ``key=value,key=value`` (or JSON) mappings."""

import re

import pytest

from crawler.notation import NotationError, parse_mapping, parse_pattern, pattern_in

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "probe", "found"),
    [
        ("/too many requests/i", "Too Many Requests", True),
        ("/too many requests/", "Too Many Requests", False),
        ("/a\\d+b/", "xa12b", True),
        ("Just a moment...", "Just a moment...", True),
        ("Just a moment...", "Just a momentXXX", False),  # a literal: dots are dots
        ("/", "a/b", True),  # too short to be a regex
        ("//", "a//b", True),
        ("/path/to", "/path/to", True),  # no closing slash: a literal
    ],
)
def test_patterns(text, probe, found):
    assert pattern_in(parse_pattern(text), probe) is found


def test_pattern_kinds_and_errors():
    assert isinstance(parse_pattern("/x/i"), re.Pattern) and parse_pattern("/x/i").flags & re.IGNORECASE
    assert parse_pattern("g-recaptcha") == "g-recaptcha"
    with pytest.raises(NotationError, match=r"^invalid regex: "):
        parse_pattern("/(unclosed/")
    with pytest.raises(NotationError, match="expected a string"):
        parse_pattern(42)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("", {}),
        ("  ", {}),
        ({"a.test": "2"}, {"a.test": 2.0}),
        ('{"a.test": 2, "b.test": 0.5}', {"a.test": 2.0, "b.test": 0.5}),
        ("a.test=2, b.test = 0.5,", {"a.test": 2.0, "b.test": 0.5}),
    ],
)
def test_mappings(value, expected):
    assert parse_mapping(value, float) == expected


def test_mapping_values_keep_later_equals_signs():
    assert parse_mapping("fastpeople=http://h:1/?a=b, spa=http://h:2") == {
        "fastpeople": "http://h:1/?a=b",
        "spa": "http://h:2",
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a.test=2,b.test", "item 2: expected key=value"),
        ("=2", "empty key"),
        ("a.test=fast", "a.test: could not convert string to float: 'fast'"),
        ('{"a.test": 2', "invalid JSON"),
        ('{"a.test": "x"}', "a.test: could not convert"),
    ],
)
def test_mapping_errors_say_what_is_wrong(value, message):
    with pytest.raises(NotationError) as error:
        parse_mapping(value, float)
    assert str(error.value).startswith(message)


def test_an_empty_json_object_is_an_empty_mapping():
    assert parse_mapping("{ }", float) == {}
