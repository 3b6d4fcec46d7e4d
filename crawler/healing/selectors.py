"""The shortest stable selector that selects exactly a series' nodes, on every page it was seen on.

Tried in order, simplest first: a stable attribute (``[itemprop=telephone]``), one class, all classes, the
structural path, then an XPath anchored on the label the nodes sit under (``//dt[normalize-space()=
'Phones:']/following-sibling::dd[1]/li``). No positions learned from one page (``nth-child``): they are
what breaks first.
"""

from __future__ import annotations

from collections.abc import Iterator

from parsel import Selector

from crawler.healing.candidates import Series
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
    if not relative and not wildcard:
        yield own


def _quote(text: str) -> str | None:
    return None if "'" in text else f"'{text}'"


def _label_xpaths(element, label_element, relative: bool, wildcard: bool = False) -> Iterator[str]:
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
            yield f"{base}/{rel}" if rel else base
            if rel:
                yield f"{base}//{leaf}"
            # every value of the label up to the next one: dt, dd, dd, dt ...
            group = (
                f"{start}{anchor}/following-sibling::{sibling_tag}"
                f"[preceding-sibling::{label_element.tag}[1][normalize-space()={text}]]"
            )
            yield f"{group}/{rel}" if rel else group
            if rel:
                yield f"{group}//{leaf}"
        if label_element.getparent() is node:
            yield f"{start}{node.tag}[{anchor}]//{leaf}"
            for cls in classes(element):
                yield f"{start}{node.tag}[{anchor}]//{leaf}[contains(concat(' ', @class, ' '), ' {cls} ')]"
        chain.append(node)
        node = node.getparent()


def _selects_exactly(query: str, is_css: bool, series: Series, roots: dict) -> bool:
    for unit, elements in series.elements.items():
        root = roots[unit]
        try:
            found = root.css(query) if is_css else root.xpath(query)
        except ValueError:
            return False
        if [s.root for s in found] != elements:
            return False
    return True


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


def selector_for(series: Series, roots: dict, relative: bool = False) -> dict | None:
    """``{"css": ...}`` or ``{"xpath": ...}`` selecting exactly the series' nodes in every unit (``roots``:
    unit -> the parsel Selector of the page or card), with ``::attr()`` for attribute series; or None."""
    sample = series.sample()
    if sample is None:
        return None
    if series.source == "tail":
        return _tail_xpath(series, roots, relative)
    label_elements = series.label_elements
    tried = set()
    for query in _css_candidates(sample, relative, series.wildcard):
        if query not in tried and (tried.add(query) or _selects_exactly(query, True, series, roots)):
            return {"css": f"{query}::attr({series.attribute})" if series.attribute else query}
    unit = next(iter(series.elements))
    for query in _label_xpaths(sample, label_elements.get(unit), relative, series.wildcard):
        if query not in tried and (tried.add(query) or _selects_exactly(query, False, series, roots)):
            return {"xpath": f"{query}/@{series.attribute}" if series.attribute else query}
    return None


def jsonld_spec(series: Series) -> dict:
    """The field spec reading a JSON-LD (or JSON card) series."""
    if series.source == "json":
        return {"json": series.jsonld[0]}
    kind, path, *composite = series.jsonld
    if composite:  # a PostalAddress rebuilt as "street, City, ST ZIP"

        def part(name):
            return {"jsonld": {"type": kind, "path": f"{path}.{name}"}}

        return {
            "join": [
                part("streetAddress"),
                part("addressLocality"),
                {"join": [part("addressRegion"), part("postalCode")], "sep": " "},
            ],
            "sep": ", ",
        }
    return {"jsonld": {"type": kind, "path": path}}


def roots_of(responses) -> dict:
    return {unit: Selector(root=response.selector.root) for unit, response in enumerate(responses)}
