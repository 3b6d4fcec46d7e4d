"""Selector memory: what each field's nodes look like while extraction works, without their values.

Per (site, page kind, field): up to ``MAX_PRINTS`` structural prints of the matched nodes
(crawler.healing.fingerprint), the labels they sat under, the JSON-LD path when that was the source,
the value signature (kind, lengths, character classes) and hit counts (pages seen, pages where the
field had values). Kept in process and in PostgreSQL (``heal_memory``), shared by every worker:
``load`` at the start of a crawl, ``flush`` adds this process's counts and merges its prints.
"""

from __future__ import annotations

import re

import orjson

from crawler.healing.fingerprint import fingerprint
from crawler.healing.values import merge_signature, signature

MAX_PRINTS = 6
LEARN_PAGES = 25  # a field is fingerprinted on this many pages (over every crawl); counts come from every page
REFRESH_EVERY = 100  # then one page in this many refreshes the prints (the site may change a little)
_PSEUDO_CSS = re.compile(r"::(text|attr\(([^)]+)\))\s*$")
_PSEUDO_XPATH = re.compile(r"/(text\(\)(\[\d+\])?|@([\w\-:]+))\s*$")


def element_query(spec) -> tuple[str | None, str | None, str | None]:
    """(``css``|``xpath``, the query selecting elements, the attribute read) of a spec part."""
    if isinstance(spec, str):
        spec = {"css": spec}
    if "css" in spec:
        match = _PSEUDO_CSS.search(spec["css"])
        query = spec["css"][: match.start()] if match else spec["css"]
        return "css", query.strip() or "*", (match.group(2) if match else None)
    if "xpath" in spec:
        match = _PSEUDO_XPATH.search(spec["xpath"])
        query = spec["xpath"][: match.start()] if match else spec["xpath"]
        return "xpath", query, (match.group(3) if match else None)
    return None, None, None


def source_part(spec, source: str | None):
    """The spec part a trace's source path names ("any.1.css" -> spec["any"][1])."""
    part = spec
    for piece in (source or "").split(".")[:-1]:
        part = part[int(piece)] if piece.isdigit() else part.get(piece) if isinstance(part, dict) else None
        if part is None:
            return None
    return part


def _print_key(p: dict) -> tuple:
    return (p["tag"], tuple(p["classes"]), tuple(p["path"]), p["label"], p.get("attribute"))


class FieldMemory:
    def __init__(self, data: dict | None = None):
        data = data or {}
        self.prints: list[dict] = data.get("prints", [])
        self.labels: list[str] = data.get("labels", [])
        self.jsonld: list | None = data.get("jsonld")
        self.signature: dict | None = data.get("signature")
        self.learned = int(data.get("learned", 0))  # pages this field's prints were taken from
        self.pages = int(data.get("pages", 0))
        self.hits = int(data.get("hits", 0))
        self.new_pages = self.new_hits = 0
        self.changed = False  # prints, labels or signature learned here since the last flush

    def as_dict(self) -> dict:
        return {
            "prints": self.prints,
            "labels": self.labels,
            "jsonld": self.jsonld,
            "signature": self.signature,
            "learned": self.learned,
            "pages": self.pages,
            "hits": self.hits,
        }

    @property
    def presence(self) -> float:
        return self.hits / self.pages if self.pages else 0.0

    def add_print(self, p: dict) -> None:
        self.changed = True
        if all(_print_key(p) != _print_key(q) for q in self.prints):
            self.prints = [*self.prints, p][-MAX_PRINTS:]
        if p["label"] and p["label"] not in self.labels:
            self.labels = [*self.labels, p["label"]][-MAX_PRINTS:]


class SelectorMemory:
    """In-process view of ``heal_memory``; ``learn`` is called on pages whose extraction worked."""

    def __init__(self, learn_pages: int = LEARN_PAGES):
        self.fields: dict[tuple[str, str], dict[str, FieldMemory]] = {}
        self.seen_pages: dict[tuple[str, str], int] = {}
        self.learn_pages = learn_pages

    def wants(self, site: str, kind: str, fields) -> bool:
        """Whether this page should be fingerprinted: while one of ``fields`` has prints from fewer than
        ``learn_pages`` pages (a new site, or after a heal), then one page in ``REFRESH_EVERY``. Counting
        every page is cheap; fingerprinting is not (it is what the overhead goal is about)."""
        key = (site, kind)
        self.seen_pages[key] = self.seen_pages.get(key, 0) + 1
        memory = self.of(site, kind)
        # a field never seen with values has nothing to fingerprint: it does not keep the memory young
        young = any(name in memory and memory[name].hits and memory[name].learned < self.learn_pages for name in fields)
        young = young or not memory
        return young or self.seen_pages[key] % REFRESH_EVERY == 0

    def relearn(self, site: str, kind: str) -> None:
        """After a heal the page looks otherwise: take prints of the new layout."""
        for memory in self.of(site, kind).values():
            memory.learned = 0

    def of(self, site: str, kind: str) -> dict[str, FieldMemory]:
        return self.fields.setdefault((site, kind), {})

    def as_relocation_memory(self, site: str, kind: str) -> dict[str, dict]:
        return {name: m.as_dict() for name, m in self.of(site, kind).items()}

    def count(self, site: str, kind: str, field: str, hit: bool) -> FieldMemory:
        fields = self.of(site, kind)
        memory = fields.get(field) or fields.setdefault(field, FieldMemory())
        memory.pages += 1
        memory.new_pages += 1
        if hit:
            memory.hits += 1
            memory.new_hits += 1
        return memory

    def learn(self, site: str, kind: str, specs: dict, traces: dict, values: dict, node=None) -> None:
        """Record prints of the nodes each traced field matched (``node``: the card, for result pages)."""
        for name, trace in traces.items():
            value = values.get(name)
            if not trace.source or value in (None, "", [], False) or name.startswith("_"):
                continue
            memory = self.of(site, kind).setdefault(name, FieldMemory())
            memory.learned += 1
            memory.changed = True
            memory.signature = merge_signature(
                memory.signature, signature(name, value if isinstance(value, list) else [value])
            )
            if trace.source.endswith("jsonld"):
                part = source_part(specs.get(name), trace.source)
                target = (part or {}).get("jsonld")
                if target is not None:
                    memory.jsonld = (
                        ["person", target]
                        if isinstance(target, str)
                        else [target.get("type", "Person").lower(), target["path"]]
                    )
                continue
            part = source_part(specs.get(name), trace.source)
            how, query, attribute = element_query(part) if part is not None else (None, None, None)
            if not query:
                continue
            for element in _elements(trace, how, query, node)[:2]:
                memory.add_print(fingerprint(element, attribute))

    def learn_card(self, site: str, cards: list) -> None:
        """Prints of the card elements of a result page."""
        memory = self.of(site, "list").setdefault("_card", FieldMemory())
        memory.learned += 1
        for card in cards[:2]:
            if card is not None and hasattr(card, "root") and hasattr(card.root, "tag"):
                memory.add_print(fingerprint(card.root))

    # ---- PostgreSQL ----------------------------------------------------------------------------

    async def load(self, conn, sites) -> None:
        rows = await (
            await conn.execute(
                "SELECT site, kind, field, memory, pages, hits FROM heal_memory WHERE site = ANY(%s)", [list(sites)]
            )
        ).fetchall()
        for site, kind, name, memory, pages, hits in rows:
            self.of(site, kind)[name] = FieldMemory({**memory, "pages": pages, "hits": hits})

    async def flush(self, conn) -> None:
        for (site, kind), fields in self.fields.items():
            for name, memory in fields.items():
                # what this process learned replaces the row's prints; counts always add up (a field that
                # only counted here leaves the prints another worker learned alone)
                data = (
                    {k: v for k, v in memory.as_dict().items() if k not in ("pages", "hits")} if memory.changed else {}
                )
                memory.changed = False
                await conn.execute(
                    """INSERT INTO heal_memory (site, kind, field, memory, pages, hits)
                       VALUES (%s, %s, %s, %s::jsonb, %s, %s)
                       ON CONFLICT (site, kind, field) DO UPDATE SET
                         memory = heal_memory.memory || EXCLUDED.memory,
                         pages = heal_memory.pages + EXCLUDED.pages,
                         hits = heal_memory.hits + EXCLUDED.hits, updated_at = now()""",
                    [site, kind, name, orjson.dumps(data).decode(), memory.new_pages, memory.new_hits],
                )
                memory.new_pages = memory.new_hits = 0


def _elements(trace, how: str, query: str, node) -> list:
    """The elements behind the trace's matches (text and attribute matches are strings in parsel)."""
    direct = [s.root for s in trace.elements if hasattr(s.root, "tag")]
    if direct:
        return direct
    base = node if node is not None else (trace.elements[0] if trace.elements else None)
    if base is None:
        return []
    try:
        found = base.css(query) if how == "css" else base.xpath(query)
    except ValueError:
        return []
    return [s.root for s in found if hasattr(s.root, "tag")]
