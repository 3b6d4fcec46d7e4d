"""The shortest stable selector that selects exactly a series' nodes, on every page it was seen on.

Tried in order, simplest first: a stable attribute (``[itemprop=telephone]``), one class, all classes, the
structural path, then an XPath anchored on the label the nodes sit under (``//dt[normalize-space()=
'Phones:']/following-sibling::dd[1]/li``). No positions learned from one page (``nth-child``): they are
what breaks first.
"""

from __future__ import annotations

from collections.abc import Iterator

from parsel import Selector

from crawler.healing.candidates import SELF, Series
from crawler.healing.fingerprint import classes, stable_attributes, step


def _css_candidates(element, relative: bool, wildcard: bool = False) -> Iterator[str]:
    tag = "*" if wildcard else str(element.tag)
    own = tag if wildcard else step(element)
    if not wildcard:
        for name, value in stable_attributes(element).items():
            yield f'{tag}[{name}="{value}"]'
        for cls in classes(element):
            yield f"{tag}.{cls}"
        if len(classes(element)) > 1:
            yield own
    parent = element.getparent()
    if parent is not None and parent.tag not in ("body", "html"):
        for cls in classes(parent):
            yield f"{parent.tag}.{cls} > {own}"
        for name, value in stable_attributes(parent).items():
            yield f'{parent.tag}[{name}="{value}"] > {own}'
    if not wildcard:
        yield own  # inside a card, a bare tag may select exactly the one node


def _quote(text: str) -> str | None:
    return None if "'" in text else f"'{text}'"


def _label_xpaths(element, label_element, relative: bool, wildcard: bool = False, many: bool = False) -> Iterator[str]:
    """XPaths anchored on the label's text; ``many``: every value after the label first (dd, dd, dd up to
    the next dt), not the first one only, which a page showing one value would select exactly too."""
    if label_element is None:
        return
    leaf = "*" if wildcard else str(element.tag)
    text = _quote(" ".join(label_element.text_content().split()))
    if text is None:
        return
    start = ".//" if relative else "//"
    anchor = f"{label_element.tag}[normalize-space()={text}]"
    if label_element.getparent() is element:  # the label inside the node: <div><span>Age:</span> 45</div>
        yield f"{'.//' if relative else '//'}{element.tag}[{anchor}]"
    chain, node = [], element
    while node is not None and node.tag not in ("body", "html"):
        if node.getparent() is label_element.getparent() and node is not label_element:
            rel = "/".join([*(str(n.tag) for n in reversed(chain[1:])), leaf][: len(chain)])
            sibling_tag = "*" if wildcard and node is element else node.tag
            base = f"{start}{anchor}/following-sibling::{sibling_tag}[1]"
            # every value of the label up to the next one: dt, dd, dd, dt ...
            group = (
                f"{start}{anchor}/following-sibling::{sibling_tag}"
                f"[preceding-sibling::{label_element.tag}[1][normalize-space()={text}]]"
            )
            for one in (group, base) if many and not rel else (base, group):
                yield f"{one}/{rel}" if rel else one
                if rel:
                    yield f"{one}//{leaf}"
        if label_element.getparent() is node:
            yield f"{start}{node.tag}[{anchor}]//{leaf}"
            for cls in classes(element):
                yield f"{start}{node.tag}[{anchor}]//{leaf}[contains(concat(' ', @class, ' '), ' {cls} ')]"
        chain.append(node)
        node = node.getparent()


def _column_xpaths(element, label_element, relative: bool, wildcard: bool = False) -> Iterator[str]:
    """Cells of a table column (or nodes in them) by the column's heading: the cell whose position is the
    heading's, however the columns are ordered."""
    if label_element is None or label_element.tag != "th":
        return
    cell = element if element.tag == "td" else next((a for a in element.iterancestors() if a.tag == "td"), None)
    if cell is None or label_element.getparent() is cell.getparent():
        return
    text = _quote(" ".join(label_element.text_content().split()))
    if text is None:
        return
    start = ".//" if relative else "//"
    column = (
        f"{start}td[count(preceding-sibling::*) = "
        f"count(ancestor::table[1]//th[normalize-space()={text}][1]/preceding-sibling::*)]"
    )
    if cell is element:
        yield column
        return
    leaf = "*" if wildcard else str(element.tag)
    yield f"{column}/{leaf}"
    yield f"{column}//{leaf}"


def selects_exactly(query: str, is_css: bool, series: Series, roots: dict) -> bool:
    """The query selects the series' nodes in every unit, and nothing in the units without them; nodes
    without text (an empty cell) do not count: they give no value."""
    for unit, root in roots.items():
        if root is None:
            continue
        try:
            found = root.css(query) if is_css else root.xpath(query)
        except ValueError:
            return False
        selected = [s.root for s in found if not _blank(s.root, series.attribute)]
        if selected != series.elements.get(unit, []):
            return False
    return True


def _blank(element, attribute: str | None) -> bool:
    if not hasattr(element, "tag"):
        return False
    if attribute:
        return not (element.get(attribute) or "").strip()
    return not "".join(element.itertext()).strip()


def _tail_xpath(series: Series, roots: dict, relative: bool) -> dict | None:
    sample = series.sample()
    text = _quote(" ".join(sample.text_content().split()))
    if text is None:
        return None
    query = f"{'.//' if relative else '//'}{sample.tag}[normalize-space()={text}]/following-sibling::text()[1]"
    for unit, elements in series.elements.items():
        if len(roots[unit].xpath(query)) != len(elements):
            return None
    return {"xpath": query}


def selector_for(series: Series, roots: dict, relative: bool = False, many: bool = False) -> dict | None:
    """``{"css": ...}`` or ``{"xpath": ...}`` selecting exactly the series' nodes in every unit (``roots``:
    unit -> the parsel Selector of the page or card), with ``::attr()`` for attribute series; or None."""
    sample = series.sample()
    if sample is None:
        return None
    if series.source == "tail":
        return _tail_xpath(series, roots, relative)
    if series.key[1] == SELF:  # the card's own attribute
        return {"css": f"::attr({series.attribute})"}
    label_elements = series.label_elements
    tried = set()
    for query in _css_candidates(sample, relative, series.wildcard):
        if query not in tried and (tried.add(query) or selects_exactly(query, True, series, roots)):
            return {"css": f"{query}::attr({series.attribute})" if series.attribute else query}
    unit = next(iter(series.elements))
    label_element = label_elements.get(unit)
    queries = [
        *_column_xpaths(sample, label_element, relative, series.wildcard),
        *_label_xpaths(sample, label_element, relative, series.wildcard, many),
    ]
    for query in queries:
        if query not in tried and (tried.add(query) or selects_exactly(query, False, series, roots)):
            return {"xpath": f"{query}/@{series.attribute}" if series.attribute else query}
    return None


def jsonld_spec(series: Series) -> dict:
    """The field spec reading a JSON-LD (or JSON card) series."""
    if series.source == "json":
        kind, (path, *composite) = None, series.jsonld
    else:
        kind, path, *composite = series.jsonld
    composite = list(composite)

    if composite[1:] == ["first"]:  # the first address of a list
        path = f"{path}.0" if path else "0"

    def part(name):
        full = f"{path}.{name}" if path else name
        return {"json": full} if kind is None else {"jsonld": {"type": kind, "path": full}}

    if composite and composite[0] == "place":  # "City, ST" from a PostalAddress
        return {"join": [part("addressLocality"), part("addressRegion")], "sep": ", "}
    if composite:  # a PostalAddress rebuilt as "street, City, ST ZIP"
        return {
            "join": [
                part("streetAddress"),
                part("addressLocality"),
                {"join": [part("addressRegion"), part("postalCode")], "sep": " "},
            ],
            "sep": ", ",
        }
    return {"json": path} if kind is None else {"jsonld": {"type": kind, "path": path}}


def roots_of(responses) -> dict:
    return {unit: Selector(root=response.selector.root) for unit, response in enumerate(responses)}
