"""Candidate series on pages: groups of nodes (or JSON-LD paths) that could hold one field.

A series is what one selector would select: HTML nodes with their own text grouped by their structural
path and the label they sit under (so the ``dd`` under "Phones" and the one under "Relatives" differ),
attribute values (``data-age``, ``href``), and JSON-LD paths (``telephone``, ``address`` rebuilt as one
line). Its values are collected per *unit*: a page for detail pages, a card for result pages.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from parsel import Selector

from crawler.extraction import paths
from crawler.extraction.engine import _text_of
from crawler.healing.fingerprint import SKIP_TAGS, label_of, label_text, step

ADDRESS_PARTS = ("streetaddress", "addresslocality", "addressregion", "postalcode")


@dataclass
class Series:
    key: tuple
    source: str  # "html", "attr", "tail" (loose text after a label), "jsonld", "json"
    label: str | None = None
    attribute: str | None = None
    jsonld: tuple | None = None  # (type, path) or (type, path, "address")
    elements: dict = field(default_factory=dict)  # unit -> [lxml element]
    raw: dict = field(default_factory=dict)  # unit -> [value] (JSON-LD / JSON)
    label_elements: dict = field(default_factory=dict)  # unit -> label element
    wildcard: bool = False  # nodes of several tags under one label ("a" and "span" relatives): selected as *

    def units(self) -> list:
        return list(self.elements or self.raw)

    def values(self, unit, sep: str = " ") -> list:
        """The unit's raw values, read as the extraction engine reads them."""
        if self.source in ("jsonld", "json"):
            return list(self.raw.get(unit, []))
        found = []
        for element in self.elements.get(unit, []):
            if self.source == "tail":
                value = element.tail
            elif self.attribute:
                value = element.get(self.attribute)
            else:
                value = _text_of(Selector(root=element), sep)
            if value:
                found.append(" ".join(value.split()))
        return found

    def sample(self):
        for elements in self.elements.values():
            if elements:
                return elements[0]
        return None


def _walk(element) -> Iterator:
    for child in element:
        if not isinstance(child.tag, str) or child.tag in SKIP_TAGS:
            continue
        yield child
        yield from _walk(child)


def _has_own_text(element) -> bool:
    return bool((element.text or "").strip()) or any((c.tail or "").strip() for c in element)


def _wraps_one(element) -> bool:
    """A node whose value is its one child's (``<dd><a>Name</a></dd>`` beside ``<dd>Name</dd>``): taken
    too, so the values of a label read the same whether linked or not."""
    children = [c for c in element if isinstance(c.tag, str) and c.tag not in ("br", "wbr")]
    # the child holds the value itself (a link), not a list of values (<td><ul><li>...)
    return len(children) == 1 and not _has_own_text(element) and _has_own_text(children[0])


def _path_key(element, root, depth: int = 3) -> tuple:
    steps, node = [step(element)], element.getparent()
    while node is not None and node is not root and len(steps) <= depth and node.tag not in ("body", "html"):
        steps.append(step(node))
        node = node.getparent()
    return tuple(reversed(steps))


SELF = (".",)  # the path of the root's own attributes (a card's ``data-url``)


def html_series(root, unit, into: dict[tuple, Series], own_attributes: bool = False) -> None:
    """Add the HTML and attribute series under ``root`` (a page's or a card's element) for ``unit``;
    ``own_attributes``: the root's own attributes too (a card's link on the card itself)."""
    if own_attributes:
        for name, value in root.attrib.items():
            if value and (name.startswith("data-") or name == "href") and not name.startswith(("data-qa", "data-test")):
                key = ("attr", SELF, name)
                series = into.setdefault(key, Series(key, "attr", label=attribute_label(name), attribute=name))
                series.elements.setdefault(unit, []).append(root)
    for element in _walk(root):
        path = _path_key(element, root)
        tail = (element.tail or "").strip()
        if tail and label_text(element.text_content()):
            # a value written after its label as loose text: "<h2>Age:</h2> 45"
            key = ("tail", path, label_text(element.text_content()))
            series = into.setdefault(key, Series(key, "tail", label=key[2]))
            series.elements.setdefault(unit, []).append(element)
            series.label_elements.setdefault(unit, element)
        if _has_own_text(element) or _wraps_one(element):
            label, label_element = label_of(element)
            series = into.setdefault(("html", path, label), Series(("html", path, label), "html", label=label))
            series.elements.setdefault(unit, []).append(element)
            if label_element is not None:
                series.label_elements.setdefault(unit, label_element)
        for name, value in element.attrib.items():
            if value and (name.startswith("data-") or name == "href") and not name.startswith(("data-qa", "data-test")):
                key = ("attr", path, name)
                series = into.setdefault(key, Series(key, "attr", label=attribute_label(name), attribute=name))
                series.elements.setdefault(unit, []).append(element)


def attribute_label(name: str) -> str:
    """An attribute's name read as a label: "data-person-age" -> "person age", "href" -> "href"."""
    return " ".join(name.removeprefix("data-").replace("_", "-").split("-"))


def merge_leaf_tags(into: dict[tuple, Series]) -> None:
    """One more series per (parent path, label) whose nodes have several tags (relatives as links and as
    plain text): the union per unit, in document order. Grouped over every unit, so a page that shows
    only links still counts."""
    groups: dict[tuple, list[Series]] = {}
    for key, series in list(into.items()):
        if series.source == "html" and not series.wildcard:
            groups.setdefault((key[1][:-1], key[2]), []).append(series)
    orders: dict[int, dict] = {}
    for (parent, label), members in groups.items():
        if len({m.key[1][-1].split(".")[0] for m in members}) < 2:
            continue
        key = ("html", (*parent, "*"), label)
        merged = into.setdefault(key, Series(key, "html", label=label, wildcard=True))
        for unit in {u for m in members for u in m.elements}:
            elements = [e for m in members for e in m.elements.get(unit, [])]
            root = elements[0].getroottree().getroot()
            order = orders.get(id(root))
            if order is None:
                order = orders[id(root)] = {e: i for i, e in enumerate(root.iter())}
            merged.elements[unit] = sorted(elements, key=lambda e: order.get(e, 0))
            for m in members:
                if unit in m.label_elements:
                    merged.label_elements.setdefault(unit, m.label_elements[unit])


def _address_line(obj: dict) -> str | None:
    parts = {k.lower(): v for k, v in obj.items() if isinstance(v, str)}
    street, city = parts.get("streetaddress"), parts.get("addresslocality")
    if not (street and city):
        return None
    region = " ".join(p for p in (parts.get("addressregion"), parts.get("postalcode")) if p)
    return ", ".join(p for p in (street, city, region) if p)


def _place_line(obj: dict) -> str | None:
    parts = {k.lower(): v for k, v in obj.items() if isinstance(v, str)}
    city, region = parts.get("addresslocality"), parts.get("addressregion")
    return f"{city}, {region}" if city and region else None


def drop_incomplete(into: dict[tuple, Series]) -> None:
    """Composite series (an address rebuilt from its parts) with a part missing in some unit: read part by
    part, they would pair one address's street with another's city."""
    for key in [k for k, one in into.items() if any(None in values for values in one.raw.values())]:
        del into[key]


def _walk_json(value, path: str, out: dict[tuple, list], kind: str) -> None:
    if isinstance(value, list):
        addresses = [v for v in value if isinstance(v, dict) and "postaladdress" in paths.types_of(v)]
        if addresses and addresses[0] is value[0]:
            # the first of a list of addresses (the current one, where a record shows one place)
            out.setdefault((kind, path, "place", "first"), []).append(_place_line(value[0]))
            out.setdefault((kind, path, "address", "first"), []).append(_address_line(value[0]))
        for item in value:
            _walk_json(item, path, out, kind)
    elif isinstance(value, dict):
        if "postaladdress" in paths.types_of(value) or ("streetAddress" in value and "addressLocality" in value):
            # None where a part is missing: a composite read part by part would pair the wrong parts
            out.setdefault((kind, path, "address"), []).append(_address_line(value))
            out.setdefault((kind, path, "place"), []).append(_place_line(value))
        for key, sub in value.items():
            if not key.startswith("@"):
                _walk_json(sub, f"{path}.{key}" if path else key, out, kind)
    elif value not in (None, "") and not isinstance(value, bool):
        out.setdefault((kind, path), []).append(str(value))


def _path_label(path: str) -> str:
    """A JSON path read as a label, words split and an entity's own ``name`` left out: "relatedTo.name" ->
    "related to", "alternateName" -> "alternate name", "address.streetAddress" -> "address street address"."""
    steps = path.split(".")
    if len(steps) > 1 and steps[0] == "item":  # a ListItem's wrapper of the thing listed
        steps = steps[1:]
    if len(steps) > 1 and steps[-1] == "name":
        steps = steps[:-1]
    return " ".join(re.sub(r"(?<=[a-z])(?=[A-Z])", " ", step).lower() for step in steps)


def jsonld_series(response, unit, into: dict[tuple, Series]) -> None:
    for block in paths.jsonld_blocks(response):
        types = sorted(paths.types_of(block)) or ["thing"]
        found: dict[tuple, list] = {}
        _walk_json(block, "", found, types[0])
        for (kind, *rest), values in found.items():
            key = ("jsonld", kind, *rest)
            series = into.setdefault(key, Series(key, "jsonld", label=_path_label(rest[0]), jsonld=(kind, *rest)))
            series.raw.setdefault(unit, []).extend(values)


def json_series(data, unit, into: dict[tuple, Series]) -> None:
    """Series of a JSON card (an ItemList element): its paths."""
    found: dict[tuple, list] = {}
    _walk_json(data, "", found, "json")
    for (_kind, *rest), values in found.items():
        key = ("json", *rest)
        series = into.setdefault(key, Series(key, "json", label=_path_label(rest[0]), jsonld=tuple(rest)))
        series.raw.setdefault(unit, []).extend(values)


def page_series(responses: list) -> dict[tuple, Series]:
    """The series of detail pages: one unit per page."""
    series: dict[tuple, Series] = {}
    for unit, response in enumerate(responses):
        body = response.selector.root
        html_series(body, unit, series)
        jsonld_series(response, unit, series)
    merge_leaf_tags(series)
    drop_incomplete(series)
    return series
