"""How well a site definition reads redesigned pages: records, normalised comparison, accuracy scores, and
a selector memory learned from pages that work. Shared by bench/healing.py and tests/healing/test_relocation.py.

Values are compared normalised (phones E.164, addresses by crawler.normalize.address without commas,
e-mails lower, names casefolded) and as sets for list fields; result pages card by card by position. A
wrong value is counted apart from a missing one: it is the worse (it can accept the wrong person).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.extraction.engine import _fields, _items, extract_detail, extract_list, record_from_candidate
from crawler.healing.memory import SelectorMemory
from crawler.normalize import address as normal_address
from crawler.normalize import phone_e164


def records(definition, kind: str, pages: list) -> list:
    """Detail pages: one record each; result pages: a list of card records per page (by position)."""
    if kind == "detail":
        return [extract_detail(definition, page) for page in pages]
    return [
        [
            record_from_candidate(definition, c) | {"url": c.get("url")}
            for c in extract_list(definition, page).candidates
        ]
        for page in pages
    ]


def normal(name: str, value) -> frozenset:
    items = value if isinstance(value, (list, tuple)) and name != "age_range" else [value]
    out = set()
    for item in items:
        text = str(item)
        try:
            if name == "phones":
                text = phone_e164(text, "US")
            elif name == "addresses":
                text = normal_address(text).replace(",", "")
        except ValueError:
            pass
        out.add(" ".join(text.split()).casefold())
    return frozenset(out)


def empty(value) -> bool:
    return value is None or value == "" or value == [] or value == ()


@dataclass
class Score:
    ok: int = 0
    wrong: int = 0
    missing: int = 0
    fields: dict = field(default_factory=dict)  # field -> [ok, wrong, missing]

    def add(self, name: str, outcome: str) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        row = self.fields.setdefault(name, [0, 0, 0])
        row[("ok", "wrong", "missing").index(outcome)] += 1

    @property
    def total(self) -> int:
        return self.ok + self.wrong + self.missing

    @property
    def accuracy(self) -> float:
        return self.ok / self.total if self.total else 1.0

    def merge(self, other: Score) -> None:
        self.ok, self.wrong, self.missing = self.ok + other.ok, self.wrong + other.wrong, self.missing + other.missing
        for name, row in other.fields.items():
            mine = self.fields.setdefault(name, [0, 0, 0])
            for i in range(3):
                mine[i] += row[i]


def compare_record(truth: dict, got: dict, score: Score) -> None:
    for name, expected in truth.items():
        if name.startswith("_") or name in ("url", "fetch_url") or empty(expected):
            continue
        value = got.get(name)
        if empty(value):
            score.add(name, "missing")
        elif normal(name, value) == normal(name, expected):
            score.add(name, "ok")
        else:
            score.add(name, "wrong")


def compare(kind: str, truth: list, got: list) -> Score:
    score = Score()
    for expected, found in zip(truth, got, strict=True):
        if kind == "detail":
            compare_record(expected, found, score)
            continue
        for i, card in enumerate(expected):  # cards by position; a missing card misses all its fields
            compare_record(card, found[i] if i < len(found) else {}, score)
    return score


def learn(memory: SelectorMemory, definition, kind: str, pages: list) -> None:
    """Prints from pages that work, and each page's hit counts, as the crawl keeps them."""
    for page in pages:
        if kind == "detail":
            traces: dict = {}
            record = extract_detail(definition, page, traces)
            memory.learn(
                definition.id, "detail", definition.raw["detail"]["fields"], traces, record, node=page.selector
            )
            count(memory, definition.id, "detail", [record])
            continue
        card_traces: list = []
        extract_list(definition, page, traces=card_traces)
        nodes = _items(definition, page)
        memory.learn_card(definition.id, [n.selector for n in nodes])
        cards = [_card_values(definition, node) for node in nodes]
        for node, traces, values in zip(nodes, card_traces, cards, strict=False):
            memory.learn(definition.id, "list", definition.raw["list"]["fields"], traces, values, node=node.selector)
        count(memory, definition.id, "list", cards)


def count(memory: SelectorMemory, site: str, kind: str, found: list[dict]) -> None:
    """A field is present on a page when any record of it has the field."""
    for name in {n for record in found for n in record}:
        memory.count(site, kind, name, any(not empty(record.get(name)) for record in found))


def _card_values(definition, node) -> dict:
    return _fields(definition.raw["list"]["fields"], node)
