"""A heal: broken fields of one page kind relocated on the pages that broke, verified, as a new definition.

    heal_detail(raw, responses, memory) -> Heal     detail pages: fields of the whole page
    heal_list(raw, responses, memory) -> Heal       result pages: the cards, then the fields inside a card

``missing_fields(raw, kind, responses, memory)`` says which fields broke: a field reads nothing (or values
not of its kind) on more pages than its remembered presence explains; a section is lost (a label the
memory has for the field is on the page, none of the field's nodes under it; a label the old spec anchors
on gone while another is there; on result pages, nodes under a label naming the field mostly unread);
during a redesign, every usual field reading on under half the pages. Pages the definition reads nothing
on while it reads others (a placeholder, an error page) are left out. Cards are found again by
crawler.healing.cards; yes/no badges (Deceased) move with a heal when their selector matches nothing.

The healed definition is the old one with only the relocated field specs (and the cards' selector)
replaced. ``verify`` reads the pages again with it, as the crawl will: a field is kept only if its values
look like their kind on every page where it reads any, and on at least ``min_pages`` pages.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field

from crawler.extraction.definitions import SiteDefinition
from crawler.extraction.engine import FieldTrace, Node, _fields, _items, extract_list, field_values
from crawler.healing import values as kinds
from crawler.healing.candidates import (
    Series,
    drop_incomplete,
    html_series,
    json_series,
    merge_leaf_tags,
    page_series,
)
from crawler.healing.cards import jsonld_cards, relocate_cards
from crawler.healing.relocate import Proposal, relocate, relocate_flags
from crawler.healing.selectors import roots_of

ABSENCE_CHANCE = 0.05


@dataclass
class Heal:
    kind: str
    definition: dict  # the healed raw definition
    proposals: dict[str, Proposal]
    verified: dict[str, int] = field(default_factory=dict)  # field -> pages where it read valid values
    pages: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # field -> why not healed
    base: dict = field(default_factory=dict)  # the definition healed

    @property
    def healed(self) -> bool:
        return bool(self.proposals)

    def confidence(self, min_pages: int = 3) -> float:
        """0..1: the weakest healed field's score and margin, scaled down below ``min_pages`` pages."""
        if not self.proposals:
            return 0.0
        weakest = min(min(1.0, p.score + p.margin) for p in self.proposals.values())
        return round(weakest * (1.0 if self.pages >= min_pages else 0.6), 3)

    def changes(self, old: dict) -> dict:
        section = "detail" if self.kind == "detail" else "list"
        out = {}
        for name, proposal in self.proposals.items():
            before = old[section]["items"] if name == "_card" else old[section]["fields"].get(name)
            out[f"{section}.{'items' if name == '_card' else 'fields.' + name}"] = {
                "old": before,
                "new": proposal.spec,
                "score": proposal.score,
                "margin": proposal.margin,
                "method": proposal.method,
            }
        return out


def _definition(raw: dict) -> SiteDefinition:
    return SiteDefinition(
        raw["id"], raw.get("name", raw["id"]), raw.get("base_url", ""), True, raw.get("render", "http"), raw
    )


def missing_fields(raw: dict, kind: str, responses: list, memory: dict | None = None) -> list[str]:
    """Healable fields that read nothing (or values not of their kind) on most of the pages, and, with the
    selector ``memory``, fields that lost a section: a label remembered for the field is on the page but
    none of the field's nodes sits under it (only the current address read, the previous ones not)."""
    section = raw["detail" if kind == "detail" else "list"]["fields"]
    names = [n for n in section if n in kinds.HEALABLE]
    counts = dict.fromkeys(names, 0)
    lost = dict.fromkeys(names, 0)
    definition = _definition(raw)
    if kind == "detail":
        responses = _readable(definition, responses, names)
    for response in responses:
        if kind == "detail":
            traces: dict = {}
            record = _fields(definition.raw["detail"]["fields"], Node(response), traces)
            labels = _page_labels(response.selector.root) if memory else {}
            for name in names:
                value = record.get(name)
                items = value if isinstance(value, list) else [value]
                if value not in (None, "", []) and kinds.share_valid(name, items) >= 0.9:
                    counts[name] += 1
                    lost[name] += bool(labels) and _lost_section(
                        section[name], traces[name], (memory or {}).get(name), labels, response
                    )
        else:
            traces_list: list = []
            page = extract_list(definition, response, traces=traces_list)
            for name in names:
                counts[name] += any(c.get(name) not in (None, "", []) for c in page.candidates)
    half = len(responses) / 2
    gone = _labels_gone(section, names, responses)
    if kind != "detail":
        cards = [node for r in responses for node in _items(definition, r)]
        gone |= _unread_sections(section, names, cards, memory or {})
    broken = [
        n
        for n in names
        if _absent(counts[n], len(responses), (memory or {}).get(n))
        or (n == "full_name" and counts[n] < len(responses))
        or lost[n]  # one page showing a remembered section the field no longer reads is enough
        or (n in gone and counts[n] >= half)
    ]
    if broken:  # a redesign moves everything: a field that now reads on under half the pages moved too
        broken += [n for n in names if n not in broken and counts[n] < half and _usual((memory or {}).get(n))]
    return [n for n in names if n in broken]


def _usual(memory: dict | None) -> bool:
    from crawler.healing.detect import MIN_HISTORY, MIN_PRESENCE, wilson_lower

    seen, present = int((memory or {}).get("pages") or 0), int((memory or {}).get("hits") or 0)
    return seen < MIN_HISTORY or wilson_lower(present, seen) >= MIN_PRESENCE


def _absent(hits: int, pages: int, memory: dict | None) -> bool:
    """The field read nothing on more pages than chance explains. With a history (the memory's page and
    hit counts): when that few hits on these pages would happen by chance under ``ABSENCE_CHANCE`` for a
    field present on ``p`` of pages (p the history's lower bound, as the drift detector takes it), never
    when it is rare; without one, when it read on fewer than half the pages."""
    from crawler.healing.detect import MIN_HISTORY, MIN_PRESENCE, wilson_lower

    seen, present = int((memory or {}).get("pages") or 0), int((memory or {}).get("hits") or 0)
    if seen >= MIN_HISTORY:
        presence = wilson_lower(present, seen)
        # so few hits on these pages by chance, for a field that present
        chance = sum(math.comb(pages, k) * presence**k * (1 - presence) ** (pages - k) for k in range(hits + 1))
        return presence >= MIN_PRESENCE and chance < ABSENCE_CHANCE
    return hits * 2 < pages


def _unread_sections(section: dict, names: list[str], cards: list, memory: dict) -> set[str]:
    """Fields with nodes in the cards under a label that names what the field holds (as a label the
    memory or the old spec has for it) whose text the field does not read, in no card reading it: a
    section that is there, renamed, rather than absent for these people."""
    from crawler.healing.fingerprint import content_words, label_of, spec_labels
    from crawler.healing.values import kind_of

    found = set()
    for name in names:
        wanted = [
            content_words(lb) for lb in [*((memory.get(name) or {}).get("labels") or []), *spec_labels(section[name])]
        ]
        wanted = [w for w in wanted if w]
        if not wanted or kind_of(name) == "bool":
            continue
        read: dict = {}  # label -> [nodes read, nodes not read]
        for card in cards:
            if card.selector is None:
                continue
            values = [str(v) for v in field_values(section[name], card)]
            if not values:
                continue
            for element in card.selector.root.iter():
                text = " ".join((element.text or "").split())
                label = label_of(element)[0] if text and isinstance(element.tag, str) else None
                if not label or content_words(label) not in wanted:
                    continue
                counts = read.setdefault(label, [0, 0])
                counts[0 if any(v in text or text in v for v in values) else 1] += 1
        # a section mostly unread (a past place may equal the current one: read by chance) beside one read
        if any(r for r, _ in read.values()) and any(u >= 2 and r * 4 <= u for r, u in read.values()):
            found.add(name)
    return found


def _labels_gone(section: dict, names: list[str], responses: list) -> set[str]:
    """Fields whose spec anchors on several labels of the site, one of which is on none of the pages while
    another still is (``Has lived in`` renamed ``Previously lived in``: half the places lost)."""
    from crawler.healing.relocate import spec_labels

    anchored = {n: spec_labels(section[n]) for n in names}
    anchored = {n: labels for n, labels in anchored.items() if len(labels) > 1}
    if not anchored:
        return set()
    on_pages: set[str] = set()
    for response in responses:
        on_pages |= set(_page_labels(response.selector.root))
    return {n for n, labels in anchored.items() if any(lb in on_pages for lb in labels) and not set(labels) <= on_pages}


def _readable(definition: SiteDefinition, responses: list, names: list[str]) -> list:
    """The pages that say something: a page the definition reads nothing on while it reads others (a
    placeholder, an error page) is no evidence about a field; when it reads nothing anywhere, all are."""
    read = []
    for response in responses:
        record = _raw_record(definition, response)
        if any(record.get(n) not in (None, "", []) for n in names):
            read.append(response)
    return read or responses


def _page_labels(root) -> dict[str, list]:
    """{label text: [label elements]} of a page."""
    from crawler.healing.fingerprint import SKIP_TAGS, own_label

    found: dict[str, list] = {}
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag not in SKIP_TAGS:
            label = own_label(element)
            if label:
                found.setdefault(label, []).append(element)
    return found


def _lost_section(spec, trace: FieldTrace, memory: dict | None, labels: dict, response) -> bool:
    """A label the field's nodes sat under is on the page, and none of the nodes the field read now does."""
    from crawler.healing.fingerprint import label_of
    from crawler.healing.memory import _elements, element_query, source_part

    remembered = [label for label in (memory or {}).get("labels") or [] if label in labels]
    if not remembered or not trace.source or trace.source.endswith(("jsonld", "json", "regex")):
        return False
    part = source_part(spec, trace.source)
    how, query, _attribute = element_query(part) if part is not None else (None, None, None)
    if not query:
        return False
    if how == "css":  # every part of a selector group, its text or attribute read from the element
        query = re.sub(r"::(text|attr\([^)]*\))", "", query)
    under = {label_of(element)[0] for element in _elements(FieldTrace(), how, query, response.selector)}
    return any(label not in under for label in remembered)


def reserved_elements(specs: dict, broken: list[str], responses: list, cards: list | None = None) -> dict:
    """{id(element): (field, element)} of the nodes the fields that still work read (not to be taken by a
    heal of another field); fields whose old spec reads the same nodes as a broken one are left out."""
    from crawler.healing.memory import _elements, element_query, source_part

    broken_sources = {repr(_source(specs[n])) for n in broken if n in specs}
    reserved: dict = {}
    contexts = cards if cards is not None else [Node(r, selector=r.selector) for r in responses]
    for node in contexts:
        for name, spec in specs.items():
            if name in broken or name.startswith("_") or repr(_source(spec)) in broken_sources:
                continue
            trace = FieldTrace()
            field_values(spec, node, trace)
            if not trace.source:
                continue
            part = source_part(spec, trace.source)
            how, query, _attr = element_query(part) if part is not None else (None, None, None)
            if query:
                for element in _elements(trace, how, query, node.selector):
                    reserved[id(element)] = (name, element)
    return reserved


def _source(spec):
    return {k: v for k, v in spec.items() if k not in ("filters", "default")} if isinstance(spec, dict) else spec


def _raw_record(definition: SiteDefinition, response) -> dict:
    traces: dict = {}
    return _fields(definition.raw["detail"]["fields"], Node(response), traces)


def heal_detail(raw: dict, responses: list, memory: dict[str, dict], fields: list[str] | None = None) -> Heal:
    fields = fields if fields is not None else missing_fields(raw, "detail", responses, memory)
    specs = raw["detail"]["fields"]
    series = page_series(responses)
    roots = roots_of(responses)
    urls = {unit: r.url for unit, r in enumerate(responses)}
    reserved = reserved_elements(specs, fields, responses)
    proposals = relocate({n: specs[n] for n in fields if n in specs}, series, memory, roots, urls, reserved=reserved)
    if fields:  # a redesign: yes/no badges whose old selector matches nothing anywhere moved too
        flags = _lost_flags(specs, [Node(r) for r in responses])
        proposals.update(relocate_flags({n: specs[n] for n in flags}, series, roots))
    healed = copy.deepcopy(raw)
    for name, proposal in proposals.items():
        healed["detail"]["fields"][name] = proposal.spec
    heal = Heal("detail", healed, proposals, pages=len(responses), base=raw)
    heal.failed = {n: "no candidate with a clear margin" for n in fields if n not in proposals}
    return verify(heal, responses)


def _lost_flags(specs: dict, nodes: list) -> list[str]:
    """Yes/no fields whose old spec matches no node at all in any of ``nodes`` (pages or cards)."""
    lost = []
    for name, spec in specs.items():
        if kinds.kind_of(name) != "bool":
            continue
        matched = 0
        for node in nodes:
            trace = FieldTrace()
            field_values(spec, node, trace)
            matched += trace.nodes
        if not matched:
            lost.append(name)
    return lost


def verify(heal: Heal, responses: list, min_pages: int = 1) -> Heal:
    """Drop proposals that read values not of their kind on some page, or nothing on enough pages."""
    definition = _definition(heal.definition)
    found: dict[str, int] = dict.fromkeys(heal.proposals, 0)
    bad: set[str] = set()
    for response in responses:
        if heal.kind == "detail":
            record = _raw_record(definition, response)
            rows = [record]
        else:
            rows = extract_list(definition, response).candidates
        for name in heal.proposals:
            if name == "_card":
                found[name] += bool(rows)
                continue
            values = [
                v for row in rows for v in (row.get(name) if isinstance(row.get(name), list) else [row.get(name)])
            ]
            values = [v for v in values if v not in (None, "")]
            if values:
                if kinds.share_valid(name, values) < 0.9:
                    bad.add(name)
                found[name] += 1
    for name in list(heal.proposals):
        if name in bad or found[name] < min_pages:
            heal.failed[name] = "values not of the field's kind on a page" if name in bad else "read on too few pages"
            section = "detail" if heal.kind == "detail" else "list"
            del heal.proposals[name]
            if name == "_card":
                heal.definition[section]["items"] = copy.deepcopy(heal.base[section]["items"])
            else:
                heal.definition[section]["fields"][name] = copy.deepcopy(heal.base[section]["fields"][name])
    heal.verified = found
    return heal


# ---- result pages --------------------------------------------------------------------------------


def heal_list(raw: dict, responses: list, memory: dict[str, dict]) -> Heal:
    """Cards first (when the old card selector finds nothing), then the card fields inside them. When the
    cards are lost, each way of finding them again (a repeating HTML structure, a JSON-LD ItemList) is
    tried and the one whose fields heal best wins (a bare list of links loses to a JSON-LD list that
    carries the data)."""
    definition = _definition(raw)
    cards_found = sum(len(extract_list(definition, r).candidates) for r in responses)
    if cards_found:
        return _heal_cards(raw, responses, memory, None, missing_fields(raw, "list", responses, memory))
    fields = [n for n in raw["list"]["fields"] if n in kinds.HEALABLE]
    heals = [
        _heal_cards(raw, responses, memory, card, fields)
        for card in (relocate_cards(responses, memory.get("_card"), memory.get("url")), jsonld_cards(responses))
        if card is not None
    ]
    if not heals:
        heal = Heal("list", copy.deepcopy(raw), {}, pages=len(responses), base=raw)
        heal.failed["_card"] = "no repeating structure with detail links"
        return heal
    return max(heals, key=lambda h: (len(h.proposals), -len(h.failed)))


def _single_in_memory(memory: dict[str, dict], specs: dict) -> tuple:
    """Places the memory saw one per card (the current city, not every place lived), read by one plain
    selector (not an ``all`` of several sources: those gather several values even when the card learned
    last had one). Only places: the memory keeps the count of the last card learned, and a place is the
    one field whose meaning changes with it (a card's city against every place the person lived)."""
    return tuple(
        name
        for name, m in memory.items()
        if kinds.kind_of(name) == "city_state"
        and ((m or {}).get("signature") or {}).get("count", [0, 2])[1] == 1
        and isinstance(specs.get(name), dict)
        and not {"all", "any", "join"} & set(specs[name])
        and "," not in str(specs[name].get("css", ""))
    )


def _heal_cards(raw: dict, responses: list, memory: dict, card: Proposal | None, fields: list[str]) -> Heal:
    healed = copy.deepcopy(raw)
    proposals: dict[str, Proposal] = {}
    if card is not None:
        proposals["_card"] = card
        healed["list"]["items"] = card.spec
    heal = Heal("list", healed, proposals, pages=len(responses), base=raw)
    nodes = _card_nodes(_definition(healed), responses)
    series: dict[tuple, Series] = {}
    roots, urls = {}, {}
    for unit, (response, node) in enumerate(nodes):
        urls[unit] = response.url
        if node.selector is not None:
            roots[unit] = node.selector
            html_series(node.selector.root, unit, series, own_attributes=True)
        else:
            roots[unit] = None
            json_series(node.data, unit, series)
    merge_leaf_tags(series)
    drop_incomplete(series)
    specs = raw["list"]["fields"]
    single = ("full_name", "age", "age_range", "birth_year", "birth_month", "url", *_single_in_memory(memory, specs))
    found = relocate(
        {n: specs[n] for n in fields if n in specs}, series, memory, roots, urls, relative=True, single_fields=single
    )
    if card is not None and all(root is not None for root in roots.values()):
        flags = _lost_flags(specs, [node for _, node in nodes])
        found.update(relocate_flags({n: specs[n] for n in flags}, series, roots, relative=True))
    for name, proposal in found.items():
        healed["list"]["fields"][name] = proposal.spec
        proposals[name] = proposal
    heal.failed.update({n: "no candidate with a clear margin" for n in fields if n not in found})
    return verify(heal, responses)


def _card_nodes(definition: SiteDefinition, responses: list) -> list[tuple]:
    return [(r, node) for r in responses for node in _items(definition, r)]
