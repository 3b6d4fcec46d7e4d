"""Extraction from responses by a site definition: pure functions, testable on saved pages."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from parsel import Selector

from crawler.extraction import paths
from crawler.extraction.definitions import SiteDefinition
from crawler.extraction.filters import apply, collapse, to_int
from crawler.extraction.schema import LIST_FIELDS
from crawler.extraction.templates import render
from crawler.items import PersonListing
from crawler.notation import parse_pattern, pattern_in


@dataclass
class ListPage:
    candidates: list[dict] = field(default_factory=list)
    next_url: str | None = None
    empty: bool = False  # no candidates on this page
    no_results: bool = False  # the site's own "no results" marker is on the page


# the text a reader sees: no script, style or template bodies (a <script> holding "Age 99" is not the page)
VISIBLE_TEXT = ".//text()[not(ancestor::script or ancestor::style or ancestor::noscript or ancestor::template)]"


def visible_text(selector: Selector) -> str:
    """The node's visible text: text nodes outside scripts and styles, entities decoded (by the parser),
    whitespace (``&nbsp;`` included) collapsed to single spaces."""
    return collapse(" ".join(selector.xpath(VISIBLE_TEXT).getall()))


def page_text(response) -> str:
    """The visible text of an HTML page (cached on the response); the body itself for JSON or plain text."""
    if _is_json(response) or not hasattr(response, "selector"):
        return response.text
    return paths.cached_on(response, "_visible_text", lambda: visible_text(response.selector))


class Node:
    """Where a field is read: an HTML node (Selector) or a JSON value, plus the page."""

    def __init__(self, response, selector: Selector | None = None, data: Any = None):
        self.response = response
        self.selector = selector
        self.data = data

    def text(self) -> str:
        if self.selector is not None:
            return visible_text(self.selector)
        return page_text(self.response)


def _text_of(selector, sep: str = " ") -> str:
    """A selected node as text: its text nodes, each collapsed, joined by ``sep``."""
    if isinstance(selector.root, str):
        return selector.root
    if not hasattr(selector.root, "tag"):  # an attribute or a number from XPath
        return str(selector.get())
    # a script or style selected on purpose (JSON in a <script>) gives its own text
    texts = selector.xpath(".//text()" if selector.root.tag in ("script", "style") else VISIBLE_TEXT).getall()
    return sep.join(t for t in (collapse(t) for t in texts) if t)


def _is_json(response) -> bool:
    content_type = (response.headers.get(b"Content-Type") or b"").lower() if hasattr(response, "headers") else b""
    return b"json" in content_type or not hasattr(response, "css")


@dataclass
class FieldTrace:
    """Where a field's values came from (provenance), or why it is empty; filled only when asked for."""

    source: str | None = None  # the key path of the spec part that gave values ("css", "any.1.jsonld")
    nodes: int = 0  # nodes (or raw values) the sources matched, before filters
    elements: list = field(default_factory=list)  # the matched HTML nodes (for the selector memory)
    reason: str | None = None  # why empty: "no match" or "filtered out"

    def found(self, path: str, kind: str, matched: list) -> None:
        if matched:
            self.source = self.source or (f"{path}.{kind}" if path else kind)
            self.nodes += len(matched)


def _raw_values(spec: Any, node: Node, trace: FieldTrace | None = None, path: str = "") -> list:
    if isinstance(spec, str):
        spec = {"css": spec}
    if "any" in spec:
        for i, sub in enumerate(spec["any"]):
            values = field_values(sub, node, trace, f"{path}.any.{i}" if path else f"any.{i}")
            if values:
                return values
        return []
    if "all" in spec:
        return [
            v
            for i, sub in enumerate(spec["all"])
            for v in field_values(sub, node, trace, f"{path}.all.{i}" if path else f"all.{i}")
        ]
    if "join" in spec:
        # one value from several: the first values of every part joined, then the second values, ...
        parts = [
            field_values(sub, node, trace, f"{path}.join.{i}" if path else f"join.{i}")
            for i, sub in enumerate(spec["join"])
        ]
        joiner = spec.get("sep", ", ")
        return [
            joiner.join(str(values[i]) for values in parts if i < len(values))
            for i in range(max(map(len, parts), default=0))
        ]
    if "const" in spec:
        return [spec["const"]]
    if "css" in spec or "xpath" in spec:
        base = node.selector if node.selector is not None else node.response.selector
        found = base.css(spec["css"]) if "css" in spec else base.xpath(spec["xpath"])
        if trace is not None and found:
            trace.found(path, "css" if "css" in spec else "xpath", found)
            trace.elements.extend(found)
        values = [_text_of(s, spec.get("sep", " ")) for s in found]
        if "regex" in spec:
            values = [m for v in values for m in _matches(spec["regex"], v)]
        return values
    if "regex" in spec:
        values = _matches(spec["regex"], node.text())
        if trace is not None:
            trace.found(path, "regex", values)
        return values
    if "jsonld" in spec:
        target = spec["jsonld"]
        kind, json_path = (
            ("person", target) if isinstance(target, str) else (target.get("type", "Person").casefold(), target["path"])
        )
        values = [
            v
            for block in paths.jsonld_blocks(node.response)
            if kind in paths.types_of(block)
            for v in paths.resolve(block, json_path)
        ]
        if trace is not None:
            trace.found(path, "jsonld", values)
        return values
    if "json" in spec:
        data = node.data if node.data is not None else paths.parse_json_body(node.response)
        values = paths.resolve(data, spec["json"])
        if trace is not None:
            trace.found(path, "json", values)
        return values
    return []


def _matches(pattern: str, text: str) -> list[str]:
    return [m.group(1) if m.groups() else m.group() for m in re.finditer(pattern, text)]


def field_values(spec: Any, node: Node, trace: FieldTrace | None = None, path: str = "") -> list:
    """Every value of the field, filtered (empty ones dropped); ``trace`` collects where they came from."""
    values = [collapse(v) for v in _raw_values(spec, node, trace, path)]
    values = [v for v in values if v is not None and v != ""]
    if isinstance(spec, dict) and spec.get("filters"):
        values = apply(values, spec["filters"], node.response.url)
    if trace is not None and not path:
        trace.reason = None if values else ("filtered out" if trace.nodes else "no match")
    if not values and isinstance(spec, dict) and "default" in spec:
        values = [spec["default"]]
    return values


def field_value(name: str, spec: Any, node: Node, list_field: bool, trace: FieldTrace | None = None):
    values = field_values(spec, node, trace)
    many = list_field or (isinstance(spec, dict) and spec.get("many"))
    if many:
        unique = []
        for v in values:
            if v not in unique:
                unique.append(v)
        return unique
    return values[0] if values else None


def marker_matches(marker, response) -> bool:
    """A ``{css|xpath|text}`` marker (or a list of them) is on the page."""
    if not marker:
        return False
    for one in marker if isinstance(marker, list) else [marker]:
        if "text" in one:
            if pattern_in(parse_pattern(one["text"]), page_text(response)):
                return True
        elif hasattr(response, "css") and (
            ("css" in one and response.css(one["css"])) or ("xpath" in one and response.xpath(one["xpath"]))
        ):
            return True
    return False


def _items(definition: SiteDefinition, response) -> list[Node]:
    spec = definition.raw["list"]["items"]
    if "json" in spec:
        data = paths.parse_json_body(response)
        return [Node(response, data=item) for item in paths.resolve(data, spec["json"])]
    if "jsonld" in spec:  # cards in a JSON-LD list (an ItemList's elements): fields read them with `json`
        target = spec["jsonld"]
        kind, json_path = (
            ("itemlist", target)
            if isinstance(target, str)
            else (target.get("type", "ItemList").casefold(), target["path"])
        )
        return [
            Node(response, data=item)
            for block in paths.jsonld_blocks(response)
            if kind in paths.types_of(block)
            for item in paths.resolve(block, json_path)
        ]
    found = response.css(spec["css"]) if "css" in spec else response.xpath(spec["xpath"])
    return [Node(response, selector=s) for s in found]


def _fields(fields: dict, node: Node, traces: dict | None = None) -> dict:
    if traces is None:
        return {name: field_value(name, spec, node, name in LIST_FIELDS) for name, spec in fields.items()}
    record = {}
    for name, spec in fields.items():
        trace = traces[name] = FieldTrace()
        record[name] = field_value(name, spec, node, name in LIST_FIELDS, trace)
    return record


def _next_url(definition: SiteDefinition, response, page: int, values: dict) -> str | None:
    spec = definition.raw["list"].get("next_page")
    if not spec or marker_matches(spec.get("last"), response):
        return None
    value = None
    source = {k: spec[k] for k in ("css", "xpath", "json") if k in spec}
    if source:
        found = field_values(source, Node(response))
        if not found:
            return None
        value = str(found[0])
    if "template" in spec:
        url = render(spec["template"], {**values, "value": value or "", "page": str(page + 1)})
    else:
        url = value
    return response.urljoin(url) if url else None


def next_page_url(definition: SiteDefinition, response, query_values: dict | None = None) -> str | None:
    """The next result page's URL read on its own (a page whose cards could not be read still has one)."""
    if marker_matches(definition.raw["list"].get("no_results"), response):
        return None
    page = int(response.meta.get("page", 1)) if paths._has_request(response) else 1
    url = _next_url(definition, response, page, query_values or {})
    return None if url == response.url else url


def extract_list(
    definition: SiteDefinition, response, query_values: dict | None = None, traces: list | None = None
) -> ListPage:
    """The candidates of a result page, its next page and whether it is empty; ``traces`` (a list) gets
    each card's {field: FieldTrace}, cards without a link included."""
    listing = definition.raw["list"]
    page = int(response.meta.get("page", 1)) if paths._has_request(response) else 1
    candidates = []
    for node in _items(definition, response):
        card_traces = None
        if traces is not None:
            card_traces = {
                "_card": FieldTrace(source="items", nodes=1, elements=[node.selector] if node.selector else [])
            }
            traces.append(card_traces)
        candidate = _fields(listing["fields"], node, card_traces)
        if candidate.get("url"):
            candidate["url"] = response.urljoin(str(candidate["url"]))
        if fetch := listing.get("fetch"):
            value = candidate.get(fetch["from"])
            if value:
                candidate["fetch_url"] = response.urljoin(
                    render(fetch["template"], {**(query_values or {}), "value": str(value)})
                )
        if listing.get("follow", True) and not candidate.get("url"):
            continue  # a card without a link cannot be followed (counted by the spider as fewer candidates)
        candidates.append(candidate)
    no_results = marker_matches(listing.get("no_results"), response)
    next_url = None if no_results or not candidates else _next_url(definition, response, page, query_values or {})
    if next_url == response.url:
        next_url = None  # a "next" link to itself would loop
    return ListPage(candidates=candidates, next_url=next_url, empty=not candidates, no_results=no_results)


def detail_not_found(definition: SiteDefinition, response) -> bool:
    return marker_matches(definition.raw["detail"].get("not_found"), response)


def finish_record(record: dict) -> dict:
    """Scratch fields out; the age-related fields consistent with each other."""
    record = {k: v for k, v in record.items() if not k.startswith("_")}
    age, age_range = record.get("age"), record.get("age_range")
    if isinstance(age, list):  # parse_age_text on a decade
        record["age"], age_range = None, age_range or age
    if isinstance(age_range, (int, float)):
        age_range = [int(age_range), int(age_range)]
    if isinstance(age_range, (list, tuple)) and len(age_range) == 2:
        low, high = int(age_range[0]), int(age_range[1])
        record["age_range"] = (low, high)
        if record.get("age") is None and low == high:
            record["age"] = low
    elif "age_range" in record:
        record["age_range"] = None
    for key in ("age", "birth_year", "birth_month"):
        if record.get(key) is not None and not isinstance(record[key], int):
            record[key] = to_int(record[key])
    if "deceased" in record:
        record["deceased"] = bool(record["deceased"])
    if isinstance(record.get("full_name"), str):
        record["full_name"] = collapse(record["full_name"])
    return record


def extract_detail(definition: SiteDefinition, response, traces: dict | None = None) -> dict:
    """The record of a detail page (JSON bodies when the page is JSON); ``traces`` (a dict) gets
    {field: FieldTrace}."""
    node = Node(response, data=paths.parse_json_body(response)) if _is_json(response) else Node(response)
    return finish_record(_fields(definition.raw["detail"]["fields"], node, traces))


def record_from_candidate(definition: SiteDefinition, candidate: dict) -> dict:
    """With ``follow: false`` the card is the record."""
    return finish_record({k: v for k, v in candidate.items() if k not in ("url", "fetch_url")})


def listing_from_record(record: dict, site: str, scan_id: str, url: str) -> PersonListing:
    def strings(key):
        return [str(v) for v in record.get(key) or []]

    return PersonListing(
        site=site,
        scan_id=scan_id,
        listing_url=url,
        full_name=str(record.get("full_name") or ""),
        age=record.get("age"),
        age_range=tuple(record["age_range"]) if record.get("age_range") else None,
        birth_year=record.get("birth_year"),
        birth_month=record.get("birth_month"),
        aliases=strings("aliases"),
        locations=strings("locations"),
        phones=strings("phones"),
        emails=strings("emails"),
        addresses=strings("addresses"),
        relatives=strings("relatives"),
    )
