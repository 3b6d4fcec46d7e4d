"""Structural fingerprints of HTML nodes: what a node is, where it sits, which label it sits under, and
what a label says (label words: the usual labels of each field, stems, the words that name the thing).

Only structure and the site's own label text go in (tag, attribute names, class names, identifier-like
attribute values, ancestor path, position, the heading or label next to it); never a node's value, so
the selector memory holds no personal data. ``similarity`` compares a node against remembered prints
in the spirit of Similo (many weak properties, weighted).
"""

from __future__ import annotations

import re

from rapidfuzz import fuzz

from crawler.healing.values import LABEL_WORDS

SKIP_TAGS = frozenset({"script", "style", "noscript", "template", "head", "svg", "title", "meta", "link"})
LABEL_TAGS = frozenset({"dt", "th", "h1", "h2", "h3", "h4", "h5", "h6", "label", "strong", "b", "legend", "caption"})
# attributes whose values name a role, not a person (kept in prints when identifier-like)
STABLE_ATTRS = ("id", "itemprop", "role", "name", "rel", "type")
_IDENTIFIER = re.compile(r"^[A-Za-z][\w\-]{0,40}$")
_LABEL_TEXT = re.compile(r"^[A-Za-z][A-Za-z '&/\-]{0,38}:?$")


def classes(element) -> list[str]:
    return sorted(set((element.get("class") or "").split()))


def step(element) -> str:
    """``tag.class1.class2``: one step of a structural path."""
    return ".".join([str(element.tag), *classes(element)])


def ancestors(element, depth: int = 3) -> list:
    found, parent = [], element.getparent()
    while parent is not None and len(found) < depth and parent.tag not in ("body", "html"):
        found.append(parent)
        parent = parent.getparent()
    return found


def label_text(text: str | None) -> str | None:
    """The text as a label ("Phone Numbers:" -> "phone numbers"), or None if it does not read as one:
    short, no digits, mostly label words (a person's name is never a label)."""
    text = " ".join((text or "").split())
    if not text or not _LABEL_TEXT.match(text):
        return None
    words = text.rstrip(":").lower().split()
    if not words or len(words) > 5:
        return None
    if sum(w in LABEL_WORDS for w in words) * 2 < len(words) and not text.endswith(":"):
        return None
    return " ".join(words)


def own_label(element) -> str | None:
    if element.tag in LABEL_TAGS or (element.tag in ("span", "div", "p", "td") and len(element) == 0):
        return label_text(element.text_content())
    return None


_BREAKS = frozenset({"br", "hr", "wbr"})  # line breaks between the values of one label do not separate them


def _inner_label(element) -> tuple[str, object] | None:
    """A label written first inside the node, before its value: ``<div><span>Address:</span> 1 Oak St</div>``."""
    if not len(element) or not isinstance(element[0].tag, str):
        return None
    first = element[0]
    text = " ".join(first.text_content().split())
    has_value = (first.tail or "").strip() or len(element) > 1
    if has_value and (first.tag in LABEL_TAGS or text.endswith(":")):
        found = own_label(first)
        if found:
            return found, first
    return None


def _column_header(element, depth: int) -> tuple[str, object] | None:
    """A table cell's (or a node in it) column heading: the ``th`` at the cell's position in the table's
    header row, when the cell's own row has no heading of its own."""
    cell, node = None, element
    for _ in range(depth + 1):
        if node is None:
            return None
        if node.tag == "td":
            cell = node
            break
        node = node.getparent()
    row = cell.getparent() if cell is not None else None
    if row is None or row.tag != "tr" or any(c.tag == "th" for c in row):
        return None
    table = next((a for a in row.iterancestors() if a.tag == "table"), None)
    if table is None:
        return None
    header = next((tr for tr in table.iter("tr") if any(c.tag == "th" for c in tr)), None)
    if header is None:
        return None
    cells = [c for c in row if c.tag in ("td", "th")]
    headings = [c for c in header if c.tag in ("td", "th")]
    index = cells.index(cell)
    if index >= len(headings) or headings[index].tag != "th":
        return None
    found = label_text(headings[index].text_content())
    return (found, headings[index]) if found else None


def label_of(element, depth: int = 3) -> tuple[str | None, object | None]:
    """The label a node sits under and its element: the nearest label-like preceding sibling of the node
    or of one of its ancestors, or the heading first in an ancestor."""
    inner = _inner_label(element)
    if inner is not None:
        return inner
    column = _column_header(element, depth)
    if column is not None:
        return column
    node = element
    for _ in range(depth + 1):
        if node is None or node.tag in ("body", "html"):
            break
        sibling, seen = node.getprevious(), 0
        while sibling is not None and seen < 2:
            if isinstance(sibling.tag, str) and sibling.tag not in _BREAKS:
                # more values of the same label (dd after dd) are no label; a sibling of the same tag in
                # another role is (<span class="label">Age</span><span class="value">45</span>)
                same = sibling.tag == node.tag and classes(sibling) == classes(node)
                found = own_label(sibling) if not same else None
                if found:
                    return found, sibling
                if not same:
                    seen += 1
            sibling = sibling.getprevious()
        parent = node.getparent()
        if parent is not None and len(parent) and parent[0] is not node and isinstance(parent[0].tag, str):
            first = parent[0]
            if first.tag in LABEL_TAGS:
                found = own_label(first)
                if found:
                    return found, first
        node = parent
    return _attribute_label(element, depth), None


_ATTRIBUTE_NOISE = frozenset({"data", "qa", "test", "testid", "id", "js", "section", "field", "role"})
_LINK_ATTRIBUTES = frozenset({"data-url", "data-link", "data-href", "data-id"})


def _attribute_label(element, depth: int) -> str | None:
    """No label text near the node: a role written in its own or an ancestor's attribute names
    (``data-qa-previous-locations``, ``data-section="phones"``), read as a label."""
    node = element
    for _ in range(depth + 1):
        if node is None or node.tag in ("body", "html"):
            return None
        for name, value in node.attrib.items():
            # markers only (data-qa-location=""), and a section's name (data-section="phones"): never a
            # value (an id, a link, a person's name in data-person-name="...")
            section = name == "data-section" and _IDENTIFIER.match(value or "")
            if not name.startswith("data-") or name in _LINK_ATTRIBUTES or (value and not section):
                continue
            words = [w for w in name.split("-") if w not in _ATTRIBUTE_NOISE]
            if section:
                words += value.replace("_", "-").split("-")
            found = label_text(" ".join(words)) if words else None
            if found:
                return found
        node = node.getparent()
    return None


def stable_attributes(element) -> dict[str, str]:
    stable = {}
    text = (element.text or "").strip()
    for name, value in element.attrib.items():
        role_like = name in STABLE_ATTRS or name.startswith(("data-qa", "data-test"))
        if role_like and _IDENTIFIER.match(value or "") and value != text:
            stable[name] = value
    return stable


def fingerprint(element, attribute: str | None = None) -> dict:
    """The structural print of a node (``attribute``: the value was read from that attribute)."""
    parent = element.getparent()
    position = 0
    if parent is not None:
        same = [c for c in parent if c.tag == element.tag]
        position = min(same.index(element), 5) if element in same else 0
    label, _ = label_of(element)
    return {
        "tag": str(element.tag),
        "classes": classes(element),
        "attrs": sorted(a for a in element.attrib if a not in ("class", "style")),
        "stable": stable_attributes(element),
        "path": [step(a) for a in ancestors(element)],
        "position": position,
        "label": label,
        "attribute": attribute,
    }


def _jaccard(a, b) -> float:
    a, b = set(a), set(b)
    return len(a & b) / len(a | b) if a | b else 1.0


def similarity(print_a: dict, print_b: dict) -> float:
    """0..1: how alike two node prints are (weighted over the properties both have)."""
    score = weight = 0.0

    def add(value: float, w: float) -> None:
        nonlocal score, weight
        score, weight = score + value * w, weight + w

    add(float(print_a["tag"] == print_b["tag"]), 1.0)
    add(_jaccard(print_a["classes"], print_b["classes"]), 1.5)
    add(_jaccard(print_a["attrs"], print_b["attrs"]), 0.5)
    if print_a["stable"] or print_b["stable"]:
        add(_jaccard(print_a["stable"].items(), print_b["stable"].items()), 1.5)
    add(_jaccard(print_a["path"], print_b["path"]), 1.0)
    add(float(print_a.get("attribute") == print_b.get("attribute")), 0.5)
    if print_a["label"] and print_b["label"]:
        add(fuzz.token_set_ratio(print_a["label"], print_b["label"]) / 100, 2.0)
    return score / weight if weight else 0.0


# ---- label words: what a label says, across wordings --------------------------------------------

# the labels sites put in front of each field (the remembered labels of a site come on top)
FIELD_LABELS = {
    "full_name": ["name", "full name"],
    "aliases": [
        "also known as",
        "aka",
        "alias",
        "aliases",
        "other names",
        "alternate name",
        "alternate name",
        "additional name",
        "known as",
    ],
    "relatives": [
        "relatives",
        "possible relatives",
        "associates",
        "related to",
        "related to",
        "family",
        "relatives associates",
        "knows",
    ],
    "phones": ["phone", "phones", "phone numbers", "telephone", "phone number"],
    "emails": ["email", "emails", "email addresses", "e-mail"],
    "addresses": ["address", "addresses", "current address", "previous addresses", "past addresses", "address history"],
    "locations": ["lives in", "location", "locations", "address", "addresses", "current address", "previous addresses"],
    "age": ["age", "years old"],
    "birth_year": ["born", "birth", "date of birth", "dob", "birth year", "year of birth", "birthday"],
    "birth_month": ["born", "birth", "date of birth", "dob", "birth month", "month of birth", "birthday"],
    "age_range": ["age", "years old", "in their"],
    "url": ["url", "href", "link"],
}
_WORD = re.compile(r"[a-z]+")
PAST_WORDS = frozenset({"past", "previou", "previous", "former", "prior", "old"})
PLACE_WORDS = frozenset({"address", "location", "liv", "residenc", "resid", "city"})


def _stem(word: str) -> str:
    """A label word's stem: "addresses" -> "address", "phones" -> "phone", "relatives" and "related" ->
    "relat" (so a JSON-LD ``relatedTo`` reads as the site's "Relatives")."""
    if len(word) > 4 and word.endswith(("sses", "xes", "ches", "shes")):
        word = word[:-2]
    elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for suffix in ("ive", "ed", "e"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def label_words(label: str) -> set[str]:
    return {_stem(w) for w in _WORD.findall(label.lower().replace("-", ""))}


def label_score(label: str | None, wanted: list[str]) -> float:
    if not label:
        return 0.0
    have = label_words(label)
    best = 0.0
    for other in wanted:
        want = label_words(other)
        if want and have:
            best = max(best, len(have & want) / max(len(have), len(want)))
    return best


# a label the site itself used for the field counts fully; the usual labels of any site count less, so
# "Relatives" (remembered) beats "Associates" (a usual label of relatives elsewhere)
GENERIC_LABEL_WEIGHT = 0.75


def field_label_score(label: str | None, remembered: list[str], wanted: list[str]) -> float:
    """How well a series' label names the field: all content words of a remembered label in it, or
    (weighed down) the overlap with the field's usual labels."""
    if not label:
        return 0.0
    have = content_words(label)
    best = 0.0
    for other in remembered:
        want = content_words(other)
        if want and have:
            best = max(best, len(want & have) / len(want | have))
    return max(best, GENERIC_LABEL_WEIGHT * label_score(label, wanted))


_QUOTED = re.compile(r"normalize-space\(\)\s*=\s*'([^']+)'|text\(\)\s*=\s*'([^']+)'")


def spec_labels(spec) -> list[str]:
    """The site's own label words in the old spec: the literal text before a regex's value ("Full Name:
    (.+?)" -> "full name") and the label an XPath anchors on (``dt[normalize-space()='Also known as']``)."""
    found: list[str] = []
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "regex" and isinstance(value, str):
                prefix = value.split("(", 1)[0].replace("\\", "").strip()
                label = label_text(prefix) if prefix.endswith(":") else None
                if label:
                    found.append(label)
            elif key == "xpath" and isinstance(value, str):
                for match in _QUOTED.finditer(value):
                    label = label_text(match.group(1) or match.group(2))
                    if label:
                        found.append(label)
            elif isinstance(value, (dict, list)):
                found += spec_labels(value)
    elif isinstance(spec, list):
        for item in spec:
            found += spec_labels(item)
    return list(dict.fromkeys(found))


_CLASS_NOISE = frozenset(
    {
        "card",
        "item",
        "result",
        "results",
        "row",
        "cell",
        "col",
        "value",
        "values",
        "content",
        "field",
        "text",
        "info",
        "data",
        "wrap",
        "box",
        "inner",
        "outer",
        "main",
        "list",
        "entry",
        "record",
        "block",
        "section",
        "person",
        "profile",
    }
)


def class_words(element) -> str | None:
    """The words of a node's class names without layout words: "card-name" -> "name"."""
    words = [w for c in classes(element) for w in re.split(r"[-_]", c.lower()) if w and w not in _CLASS_NOISE]
    return " ".join(w for w in words if w.isalpha()) or None


# words that say which part of a list a section holds, not what it holds ("Past addresses", "Current address")
_MODIFIERS = frozenset(
    {
        "possible",
        "current",
        "currently",
        "previous",
        "previously",
        "past",
        "former",
        "formerly",
        "other",
        "recent",
        "prior",
        "latest",
        "older",
        "the",
        "of",
        "and",
        "to",
        "in",
        "at",
        "a",
        "has",
        "had",
        "from",
        "with",
        "for",
    }
)


def content_words(label: str | None) -> frozenset:
    return frozenset(label_words(label or "") - _MODIFIERS - {_stem(w) for w in _MODIFIERS})
