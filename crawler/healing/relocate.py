"""Heuristic relocation: find where broken fields went, as specs that are checked before anyone trusts them.

Every candidate series of the pages (crawler.healing.candidates) is scored for each broken field:

- its values must look like the field's kind (>= 90 % valid after the old spec's filters or the kind's
  default ones): a phone field is never healed onto a column of names;
- the label it sits under against the labels remembered for the field and the field's usual labels;
- its nodes' structure against the remembered prints (Similo-like, crawler.healing.fingerprint);
- how many units (pages or cards) it covers, and whether a single-valued field gets one value.

Fields then take series best score first; a series goes to one field only unless the old specs of
both read the same nodes (addresses and locations). A heal needs a clear margin over the runner-up
that reads other values. The winner becomes the shortest selector that selects exactly its nodes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from crawler.extraction.filters import apply
from crawler.healing import values as kinds
from crawler.healing.candidates import Series
from crawler.healing.fingerprint import (
    FIELD_LABELS,
    PAST_WORDS,
    PLACE_WORDS,
    class_words,
    content_words,
    field_label_score,
    fingerprint,
    label_words,
    similarity,
    spec_labels,
)
from crawler.healing.selectors import jsonld_spec, selector_for, selects_exactly

MIN_VALID = 0.9
MIN_MARGIN = 0.08
# the value after a label written in the same node: "AKA: Jack Smith", "Phone: (402) 555-0175"
INLINE_LABEL = r"^[A-Za-z][A-Za-z .'/&\-]{0,30}:[\s,]*(\S.*)$"


_PLACE_KINDS = ("address", "city_state")
_SHAPED_KINDS = ("city_state", "phone", "email", "address")  # a value whose shape says what it is


@dataclass
class Scored:
    series: Series
    score: float
    filters: list
    regex: str | None
    values: dict  # unit -> filtered values
    coverage: float
    sep: str = " "  # how a node's text nodes are joined
    unlabelled: bool = False  # only the shape of its values speaks for it
    single: bool = False  # the field holds one value per unit
    tags: frozenset = frozenset()  # the tags of the field's remembered nodes


@dataclass
class Proposal:
    field: str
    spec: dict
    score: float
    margin: float
    units: int
    units_found: int
    method: str = "heuristic"
    runner_up: float = 0.0
    details: dict = field(default_factory=dict)


def _part_filters(spec) -> list[list]:
    """The filters of the old spec's parts (``all: [{xpath, filters: [{split: "; "}]}, ...]``)."""
    found = []
    parts = spec.get("all") or spec.get("any") or [] if isinstance(spec, dict) else []
    for part in parts:
        if isinstance(part, dict):
            if part.get("filters"):
                found.append(list(part["filters"]))
            found += _part_filters(part)
    return found


def _filter_options(field_name: str, old_spec, extra: tuple = ()) -> list[list]:
    kind = kinds.kind_of(field_name)
    old = list(old_spec.get("filters") or []) if isinstance(old_spec, dict) else []
    options = [old] if old else []
    options += [f for f in _part_filters(old_spec) if f not in options]
    default = kinds.DEFAULT_FILTERS.get(kind, [])
    if default != old:
        options.append(default)
    options += [list(e) for e in extra if list(e) not in options]
    if [] not in options:
        options.append([])
    return options


def _place_filters(fields: dict, name: str) -> tuple:
    """A place is read off an address: the address fields' cleaning filters, then the place's own."""
    if kinds.kind_of(name) != "city_state":
        return ()
    own = kinds.DEFAULT_FILTERS["city_state"]
    found = []
    for other, spec in fields.items():
        if kinds.kind_of(other) == "address" and isinstance(spec, dict) and spec.get("filters"):
            found.append([*spec["filters"], *own])
    return tuple(found)


def _regex_options(kind: str, old_spec) -> list:
    """No regex; the old spec's own (a pattern of the site's wording, "(45 years old)"); the kind's; the
    value after an inline label."""
    options = [None]
    if isinstance(old_spec, dict) and old_spec.get("regex"):
        options.append(old_spec["regex"])
    if kinds.EXTRACTORS.get(kind):
        options.append(kinds.EXTRACTORS[kind])
    options.append(INLINE_LABEL)
    return options


def _read(series: Series, unit, field_name: str, filters: list, regex: str | None, sep: str, url: str) -> list:
    raw = series.values(unit, sep)
    if regex:
        raw = [m.group(1) for v in raw for m in re.finditer(regex, v)]
    return [v for v in apply(raw, filters, url) if v not in (None, "")] if filters else [v for v in raw if v]


def score_series(
    field_name: str, series: Series, old_spec, memory: dict | None, urls: dict, single: bool, extra: tuple = ()
) -> Scored | None:
    kind = kinds.kind_of(field_name)
    if series.jsonld and series.jsonld[-1] == "first" and not single:
        return None  # the first address only: for a field of one place per record
    sep = old_spec.get("sep", " ") if isinstance(old_spec, dict) else " "
    # a place in a multi-line address node ("street<br>City, ST ZIP") reads right only with the lines apart
    seps = [sep, ", "] if kind in _PLACE_KINDS and sep != ", " and series.source == "html" else [sep]
    units = series.units()
    best = None
    for one_sep in seps:
        for pattern in _regex_options(kind, old_spec):
            for options in _filter_options(field_name, old_spec, extra):
                regex, filters = pattern, options
                if regex and series.source in ("json", "jsonld"):
                    # the engine applies a spec's regex to what selectors read; on JSON values, the filter
                    regex, filters = None, [{"re": pattern}, *options]
                found = {u: _read(series, u, field_name, filters, regex, one_sep, urls.get(u, "")) for u in units}
                flat = [v for vs in found.values() for v in vs]
                if not flat:
                    continue
                share = kinds.share_valid(field_name, flat)
                # values whose shape says what they are read as they stand when no filter is needed
                plain = (  # a place as it stands beats one rebuilt by city_state (which reads garbage too)
                    kind == "city_state"
                    and best is not None
                    and share == best[0]
                    and not filters
                    and not regex
                    and best[1] == kinds.DEFAULT_FILTERS.get(kind)  # never over the site's own filters
                )
                if share >= MIN_VALID and (best is None or share > best[0] or (plain and best[1])):
                    best = (share, filters, regex, found, one_sep)
    if best is None:
        return None
    share, filters, regex, found, sep = best
    remembered = list((memory or {}).get("labels") or []) + spec_labels(old_spec)
    wanted = FIELD_LABELS.get(field_name, [field_name]) + remembered
    label = field_label_score(series.label, remembered, wanted)
    if series.source in ("html", "json", "jsonld"):  # a label inside the value's own text ("45 years old")
        label = max(label, 0.6 * _inline_label(series, found, wanted))
    if not series.label and series.source == "html":  # the node's class names ("card-name"), a weak label
        label = max(label, 0.6 * field_label_score(class_words(series.sample()), [], wanted))
    if single and label_words(series.label or "") & PAST_WORDS:
        label *= 0.5  # a field of one value per record is not read from a list of past ones
    structure = 0.0
    prints = (memory or {}).get("prints") or []
    if series.source in ("html", "attr") and prints:
        structure = max(similarity(fingerprint(e, series.attribute), p) for e in _samples(series) for p in prints)
    elif series.source in ("jsonld", "json") and (memory or {}).get("jsonld"):
        structure = 1.0 if list(series.jsonld) == list(memory["jsonld"]) else 0.0
    if field_name == "full_name" and series.source == "html" and series.sample().tag == "h1":
        structure = max(structure, 0.8)  # a profile's heading is its name
    covered = sum(1 for vs in found.values() if vs) / max(1, len(found))
    if single:
        counts = [len(dict.fromkeys(map(str, vs))) for vs in found.values() if vs]
        fit = sum(c == 1 for c in counts) / len(counts) if counts else 0.0
    else:
        fit = 1.0
    if single and fit < 0.75:
        return None  # a field of one value per record read as several: not this series
    # a value whose shape alone says what it is ("Buffalo, NY" as it stands, no filter needed) in a node
    # built like the remembered ones may stand without a label
    shaped = kind in _SHAPED_KINDS and not filters and regex is None
    if 0.4 * label + 0.25 * structure < 0.2 and not (shaped and structure >= 0.4):
        if shaped and covered >= 0.9 and fit >= 0.9:  # kept aside: relocate may take it if it is the only one
            return Scored(
                series, 0.15 * covered + 0.2 * fit, filters, regex, found, covered, sep, unlabelled=True, single=single
            )
        return None  # nothing says this is the field but the shape of its values
    score = 0.4 * label + 0.25 * structure + 0.15 * covered + 0.2 * fit
    tags = frozenset(p["tag"] for p in prints)
    return Scored(series, score, filters, regex, found, covered, sep, single=single, tags=tags)


def _samples(series: Series) -> list:
    """One node of each tag the series holds (a wildcard series of links and spans: both)."""
    by_tag: dict = {}
    for elements in series.elements.values():
        for element in elements:
            by_tag.setdefault(element.tag, element)
    return list(by_tag.values())[:4]


def _inline_label(series: Series, found: dict, wanted: list[str]) -> float:
    """A label written inside the node's own text ("45 years old", "Age 45"): the share of one of the
    field's labels whose words are all there."""
    unit = next(iter(series.units()), None)
    if unit is None:
        return 0.0
    text = " ".join(series.values(unit))[:200]
    have = label_words(text)
    best = 0.0
    for other in wanted:
        want = label_words(other)
        if want and want <= have:
            best = max(best, 1.0)
    return best


def _fingerprint_values(scored: Scored) -> tuple:
    return tuple((u, tuple(map(str, vs))) for u, vs in sorted(scored.values.items(), key=lambda kv: str(kv[0])))


def build_spec(scored: Scored, old_spec, roots: dict, relative: bool) -> dict | None:
    series = scored.series
    if series.source in ("jsonld", "json"):
        spec = jsonld_spec(series)
    else:
        spec = selector_for(series, roots, relative, many=not scored.single)
        if spec is None:
            return None
        if len(scored.tags) > 1 and not series.wildcard and series.source == "html":
            spec = _any_leaf(spec, series, roots)
    if "join" not in spec and ((isinstance(old_spec, dict) and "sep" in old_spec) or scored.sep != " "):
        spec["sep"] = scored.sep
    if scored.regex:
        spec["regex"] = scored.regex
    if scored.filters:
        spec["filters"] = list(scored.filters)
    if isinstance(old_spec, dict):
        for key in ("many", "default"):
            if key in old_spec:
                spec[key] = old_spec[key]
    return spec


def _any_leaf(spec: dict, series: Series, roots: dict) -> dict:
    """The field's nodes had several tags (relatives as links and as plain text) and these pages show one:
    the same selector with any tag at its end, when that selects exactly the same nodes here."""
    tag = str(series.sample().tag)
    how = "xpath" if "xpath" in spec else "css"
    query = spec[how]
    for ending in (f"/{tag}", f" > {tag}"):
        if query.endswith(ending) and selects_exactly(query[: -len(tag)] + "*", how == "css", series, roots):
            return {**spec, how: query[: -len(tag)] + "*"}
    return spec


def _first_spec(member: Scored, options: list[Scored], old_spec, roots: dict, relative: bool) -> dict | None:
    """The spec of the member, or of the first option that reads the same values when no selector selects
    exactly the member's nodes (links and their badges under one label: the links; a row's link: the
    row's own data-url)."""
    same = _fingerprint_values(member)
    for option in [member, *options]:
        if option is member or _fingerprint_values(option) == same:
            spec = build_spec(option, old_spec, roots, relative)
            if spec is not None:
                return spec
    return None


def _mostly_reserved(series: Series, reserved: dict) -> bool:
    if not reserved or not series.elements:
        return False
    elements = [e for es in series.elements.values() for e in es]
    return sum(id(e) in reserved for e in elements) * 2 > len(elements)


def _richest(options: list[Scored]) -> Scored:
    """The best option, or one as good under the same label that reads all its values and more
    (relatives as links and as plain text: the union of both tags)."""
    best = options[0]
    mine = {(u, v) for u, vs in best.values.items() for v in map(str, vs)}
    for other in options[1:]:
        if other.score < best.score - 0.1 or other.series.label != best.series.label:
            continue
        theirs = {(u, v) for u, vs in other.values.items() for v in map(str, vs)}
        if mine < theirs:
            best, mine = other, theirs
    # one value per record, the same values from nodes inside the best's (the link in its cell): the inner
    # ones, which leave out what a cell may also hold on other pages (a "Deceased" badge beside the name)
    for other in options[1:] if best.single else []:  # a list's wrapper holds its plain values too
        same = other.score >= best.score - 0.1 and _fingerprint_values(other) == _fingerprint_values(best)
        if same and _inside(other.series, best.series):
            best = other
    return best


def _inside(inner: Series, outer: Series) -> bool:
    outer_nodes = {id(e) for es in outer.elements.values() for e in es}
    nodes = [e for es in inner.elements.values() for e in es]
    return (
        bool(nodes)
        and not any(id(e) in outer_nodes for e in nodes)
        and all(any(id(a) in outer_nodes for a in e.iterancestors()) for e in nodes)
    )


def _union(best: Scored, options: list[Scored], memory: dict | None, field_name: str = "") -> list[Scored]:
    """A list field the site shows under several labels (current and previous addresses): the best series
    plus each one under another label that names the same thing as a label remembered for the field
    ("Past addresses" for a remembered "Previous Addresses", never "Associates" for "Relatives"), in page
    order."""
    remembered = [content_words(label) for label in (memory or {}).get("labels") or []]
    if best.series.label:
        remembered.append(content_words(best.series.label))
    remembered = [words for words in remembered if words]
    members = [best]
    for other in sorted(options[1:], key=_pairs, reverse=True):  # the richest series of each label
        if other.series.source != best.series.source or other.series.label in {m.series.label for m in members}:
            continue
        words = content_words(other.series.label)
        # the places a person lived: every section that names a place (a "Location" and "Addresses")
        place = kinds.kind_of(field_name) == "city_state" and words & PLACE_WORDS
        if (words in remembered or place) and not _overlaps(other, members):
            members.append(other)
    return sorted(members, key=lambda m: _page_position(m.series))


def _pairs(scored: Scored) -> int:
    return sum(len(values) for values in scored.values.values())


def _overlaps(other: Scored, members: list[Scored]) -> bool:
    mine = {id(e) for m in members for es in m.series.elements.values() for e in es}
    return any(id(e) in mine for es in other.series.elements.values() for e in es)


def _page_position(series: Series) -> int:
    sample = series.sample()
    return getattr(sample, "sourceline", None) or 0


def relocate(
    fields: dict[str, object],
    series: dict[tuple, Series],
    memory: dict[str, dict],
    roots: dict,
    urls: dict,
    relative: bool = False,
    reserved: dict | None = None,
    single_fields: tuple = ("full_name", "age", "age_range", "birth_year", "birth_month", "url"),
) -> dict[str, Proposal]:
    """Proposals for ``fields`` ({name: old spec}) from the candidate ``series`` of the units in ``roots``;
    ``reserved`` ({id(element): (field, element)}): nodes that working fields read, not to be taken."""
    reserved = reserved or {}
    ranked: dict[str, list[Scored]] = {}
    for name, old_spec in fields.items():
        extra = _place_filters(fields, name)
        allowed = [one for one in series.values() if not _mostly_reserved(one, reserved)]
        scored = [
            s
            for s in (
                score_series(name, one, old_spec, memory.get(name), urls, name in single_fields, extra)
                for one in allowed
            )
            if s is not None
        ]
        labelled = [s for s in scored if not s.unlabelled]
        alone = [s for s in scored if s.unlabelled]
        # no label nor structure for the field: a series whose values alone say what they are ("Buffalo,
        # NY" as it stands, one per card) is taken only when it is the one such series
        ranked[name] = sorted(labelled or (alone if len(alone) == 1 else []), key=lambda s: s.score, reverse=True)
    # fields whose old specs read the same nodes may share a series
    same_source = {}
    for name, spec in fields.items():
        key = repr(
            {k: v for k, v in spec.items() if k not in ("filters", "default", "regex")}
            if isinstance(spec, dict)
            else spec
        )
        same_source.setdefault(key, set()).add(name)
    sharing = {name: set(group) for group in same_source.values() for name in group}
    # a place is read off an address ("City, ST" from the address line): those two may share a series
    places = [name for name in fields if kinds.kind_of(name) in _PLACE_KINDS]
    for name in places:
        sharing[name] |= set(places)
    taken: dict[tuple, str] = {}
    proposals: dict[str, Proposal] = {}
    units = len(roots)
    order = sorted(ranked, key=lambda n: ranked[n][0].score if ranked[n] else 0, reverse=True)
    for name in order:
        options = [s for s in ranked[name] if taken.get(s.series.key) in (None, *sharing[name])]
        if not options:
            continue
        best = _richest(options)
        members = [best] if name in single_fields else _union(best, options, memory.get(name), name)
        mine = {_fingerprint_values(m) for m in members}
        labels = {m.series.label for m in members}
        runner = next(
            (s for s in options[1:] if _fingerprint_values(s) not in mine and s.series.label not in labels), None
        )
        margin = best.score - (runner.score if runner else 0.0)
        if margin < MIN_MARGIN or (best.score < 0.35 and not best.unlabelled):
            continue
        specs = [_first_spec(m, options, fields[name], roots, relative) for m in members]
        if any(spec is None for spec in specs):
            continue
        spec = specs[0] if len(specs) == 1 else {"all": specs}
        for m in members:
            taken[m.series.key] = name
        found = sum(1 for vs in best.values.values() if vs)
        proposals[name] = Proposal(
            name,
            spec,
            round(best.score, 3),
            round(margin, 3),
            units,
            found,
            runner_up=round(runner.score, 3) if runner else 0.0,
            details={"label": best.series.label, "source": best.series.source},
        )
    return proposals


def relocate_flags(
    fields: dict[str, object], series: dict[tuple, Series], roots: dict, relative: bool = False
) -> dict[str, Proposal]:
    """Yes/no fields a site shows as a badge ("Deceased") when they hold: the series whose every value is
    the field's own name, at most once per unit, on the most units; read with ``bool`` and the old default."""
    found: dict[str, Proposal] = {}
    for name, old_spec in fields.items():
        want = label_words(name)
        options = [
            one
            for one in series.values()
            if one.source == "html"
            and one.units()
            and all(len(one.elements.get(u, [])) <= 1 for u in one.units())
            and all(label_words(v) == want for u in one.units() for v in one.values(u))
        ]
        spec = None
        if options:
            spec = selector_for(max(options, key=lambda one: len(one.units())), roots, relative)
        if spec is None:
            spec = _flag_by_text(series, want, roots, relative)
        if spec is None:
            continue
        default = old_spec.get("default", False) if isinstance(old_spec, dict) else False
        spec.update(filters=["bool"], default=default)
        margin = 0.5 if len(options) <= 1 else 0.1
        found[name] = Proposal(name, spec, 0.6, margin, len(roots), len(roots), details={"label": name})
    return found


def _flag_by_text(series: dict[tuple, Series], want: set, roots: dict, relative: bool) -> dict | None:
    """The badge among other nodes of its kind (``<p>Age 90</p><p>Deceased</p>``): selected by its text,
    the site's word for the flag, never a person's value."""
    for one in series.values():
        if one.source != "html":
            continue
        for unit in one.units():
            for element in one.elements.get(unit, []):
                text = " ".join(element.text_content().split())
                if label_words(text) != want or "'" in text:
                    continue
                query = f"{'.//' if relative else '//'}{element.tag}[normalize-space()='{text}']"
                picked = {u: [s.root for s in root.xpath(query)] for u, root in roots.items() if root is not None}
                if all(len(found) <= 1 for found in picked.values()):
                    return {"xpath": query}
    return None
