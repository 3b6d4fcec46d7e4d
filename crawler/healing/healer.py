"""The healer of one crawl: reads pages with provenance, learns while they work, holds the ones that break,
heals when enough broke, and hands them back to be read again with the healed definition.

    healer = Healer.from_crawler(crawler)
    definitions = await healer.open(definitions)         # memory and current versions from PostgreSQL
    record = healer.read_detail(definition, response)    # None: the page is held
    page = healer.read_list(definition, response, values)
    settled = await healer.settle(site, kind)            # a heal when due; pages to read again
    settled = await healer.settle(site, kind, final=True)  # the crawl is idle: heal with what there is
    await healer.close()                                 # memory counts and prints to PostgreSQL

A held page waits for a heal of its kind; a page that only *may* be broken (a usually present field
missing) waits as a suspect and is handed back as it was when the field shows up again. Nothing is
dropped: a page no heal can read is handed back as it reads when it still has a name (or cards), else it
ends as ``parse_error`` in the spider.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import defaultdict
from dataclasses import dataclass, field

import orjson

from crawler.extraction.definitions import SiteDefinition
from crawler.extraction.engine import ListPage, extract_detail, extract_list
from crawler.healing import values as kinds
from crawler.healing import versions
from crawler.healing.detect import DriftDetector
from crawler.healing.heal import Heal, heal_detail, heal_list, missing_fields
from crawler.healing.llm import LLMHealer
from crawler.healing.memory import SelectorMemory
from crawler.healing.versions import Version

logger = logging.getLogger(__name__)
# a field missing on a page although the history says it is there at least this often (lower bound), over
# at least this many pages, holds the page as a suspect until the field shows up again on a later page (the
# page goes back as it was) or breaks (the page is healed with the rest): a partial redesign loses nothing
SUSPECT_PRESENCE, SUSPECT_HISTORY = 0.3, 8
TYPE_CHECK_EVERY = 8


@dataclass
class Settled:
    definition: SiteDefinition | None = None  # the healed definition, when a heal was made
    version: Version | None = None
    reread: list = field(default_factory=list)  # responses to read again (with the current definition)
    given_up: list = field(default_factory=list)  # responses no heal could read: parse_error
    merge_with: dict = field(default_factory=dict)  # id(response) -> the definition it was first read with

    def record(self, definition: SiteDefinition, response) -> dict:
        """A handed-back detail page's record: with the current definition, and for a page read before the
        heal, each field the old definition read taken from it (the heal only fills what was missing)."""
        record = extract_detail(definition, response)
        before = self.merge_with.get(id(response))
        if before is not None:
            old = extract_detail(before, response)
            record = {k: old[k] if old.get(k) not in (None, "", []) else record.get(k) for k in {*record, *old}}
        return record


@dataclass
class _Site:
    definition: SiteDefinition
    base_sha256: str
    version: Version | None = None
    held: dict = field(default_factory=lambda: defaultdict(list))  # kind -> [response]
    suspects: dict = field(default_factory=lambda: defaultdict(list))  # kind -> [(response, fields)]
    broken: dict = field(default_factory=lambda: defaultdict(set))  # kind -> fields
    tried_at: dict = field(default_factory=dict)  # kind -> held pages at the last heal that failed
    pages: int = 0  # detail pages read
    healing: set = field(default_factory=set)  # kinds a heal is running for


class Healer:
    def __init__(self, settings, crawler=None, llm=None):
        self.settings = settings
        self.crawler = crawler  # its stats exist once the crawl starts
        self.enabled = settings.getbool("HEAL_ENABLED", True)
        self.min_pages = settings.getint("HEAL_MIN_PAGES", 3)
        self.auto_accept = settings.getfloat("HEAL_AUTO_ACCEPT", 0.75)
        self.max_held = settings.getint("HEAL_MAX_HELD_PAGES", 40)
        self.memory = SelectorMemory(settings.getint("HEAL_LEARN_PAGES", 25))
        self.detector = DriftDetector(self.memory)
        self.sites: dict[str, _Site] = {}
        self.llm = llm

    @classmethod
    def from_crawler(cls, crawler):
        # the crawler's one LLM client, closed with the engine; None without a key (heuristics only)
        return cls(crawler.settings, crawler, LLMHealer.from_crawler(crawler))

    def _inc(self, key: str, count: int = 1) -> None:
        if self.crawler is not None:
            self.crawler.stats.inc_value(key, count)

    # ---- the crawl's start and end ----------------------------------------------------------------

    async def open(self, definitions: dict[str, SiteDefinition]) -> dict[str, SiteDefinition]:
        """Load the memory and each site's current version; the definitions to crawl with."""
        chosen = {}
        async with await self._connection() as conn:
            await self.memory.load(conn, definitions)
            for site, definition in definitions.items():
                version = await versions.current(conn, site, definition.sha256) if self.enabled else None
                state = self.sites[site] = _Site(definition, definition.sha256, version)
                if version is not None:
                    state.definition = _replace(definition, version.definition, version.sha256)
                    logger.info(
                        "%s: reading with healed version %s (%s, %s)", site, version.id, version.origin, version.status
                    )
                chosen[site] = state.definition
        return chosen

    async def close(self, scan_id: str | None = None) -> None:
        """Store the memory; record on the scan the definition version each site was read with."""
        async with await self._connection() as conn:
            await self.memory.flush(conn)
            used = {site: (s.version.sha256 if s.version else s.base_sha256) for site, s in self.sites.items()}
            if scan_id and used:
                await conn.execute(
                    "UPDATE scans SET definitions = definitions || %s::jsonb WHERE id = %s",
                    [orjson.dumps(used).decode(), scan_id],
                )

    async def _connection(self):
        from crawler.db.pool import get_pool

        pool = await get_pool(self.settings)
        return pool.connection()

    def version_of(self, site: str) -> Version | None:
        state = self.sites.get(site)
        return state.version if state else None

    # ---- reading pages ---------------------------------------------------------------------------

    def read_detail(self, definition: SiteDefinition, response) -> dict | None:
        """The page's record, or None when the page is held (broken or suspect)."""
        if not self.enabled or definition.id not in self.sites:
            return extract_detail(definition, response)
        state = self.sites[definition.id]
        traces: dict = {}
        record = extract_detail(definition, response, traces)
        fields = definition.raw["detail"]["fields"]
        # every page: read or not; one page in TYPE_CHECK_EVERY: also of the field's kind (a drift to other
        # values shows a few pages later; testing every value of every page would cost more than extracting)
        state.pages += 1
        test = _valid if state.pages % TYPE_CHECK_EVERY == 1 else _read
        present = {n: test(n, record.get(n)) for n in fields if n in kinds.HEALABLE}
        self._count(definition.id, "detail", present)
        broken = self.detector.observe(definition.id, "detail", present)
        state.broken["detail"] |= broken
        missing = {n for n, ok in present.items() if not ok}
        # no name at all: unreadable at once; a name that does not look like one (a record whose name
        # field carries markup) only counts as a miss, as any other field's odd value does
        if not record.get("full_name") or missing & state.broken["detail"]:
            self._hold(state, "detail", response)
            return None
        if self.memory.wants(definition.id, "detail", present):
            self.memory.learn(definition.id, "detail", fields, traces, record, node=response.selector)
        suspect = {
            n for n in missing if self.detector.usual(definition.id, "detail", n, SUSPECT_PRESENCE, SUSPECT_HISTORY)
        }
        if suspect and len(state.suspects["detail"]) < self.max_held:
            state.suspects["detail"].append((response, suspect))
            self._inc(f"heal/{definition.id}/detail/suspect_pages")
            return None
        return record

    def read_list(self, definition: SiteDefinition, response, query_values: dict | None = None) -> ListPage | None:
        """The page's cards, or None when it is held (neither cards nor the "no results" marker)."""
        if not self.enabled or definition.id not in self.sites:
            return extract_list(definition, response, query_values)
        state = self.sites[definition.id]
        traces: list = []
        page = extract_list(definition, response, query_values, traces=traces)
        if page.empty and not page.no_results:
            self._hold(state, "list", response)
            return None
        fields = definition.raw["list"]["fields"]
        if page.candidates:  # card fields: a page counts a field present when one of its cards reads it
            present = {n: any(_valid(n, c.get(n)) for c in page.candidates) for n in fields if n in kinds.HEALABLE}
            self._count(definition.id, "list", present)
            state.broken["list"] |= self.detector.observe(definition.id, "list", present)
            if {n for n, ok in present.items() if not ok} & state.broken["list"]:
                self._hold(state, "list", response)
                return None
        cards = [t["_card"].elements[0] for t in traces if t["_card"].elements]
        learning = self.memory.wants(definition.id, "list", ["_card", *(n for n in fields if n in kinds.HEALABLE)])
        if cards and learning and len(cards) == len(page.candidates):  # (cards without a link are left out)
            self.memory.learn_card(definition.id, cards)
            for card, card_traces, candidate in zip(cards, traces, page.candidates, strict=True):
                self.memory.learn(definition.id, "list", fields, card_traces, candidate, node=card)
        return page

    def _count(self, site: str, kind: str, present: dict[str, bool]) -> None:
        """Per-site, per-field hits in the crawl's stats (the database keeps them in heal_memory)."""
        if self.crawler is not None:
            for name, ok in present.items():
                self.crawler.stats.inc_value(f"extract/{site}/{kind}/{name}/{'hits' if ok else 'misses'}")

    def _hold(self, state: _Site, kind: str, response) -> None:
        state.held[kind].append(response)
        self._inc(f"heal/{state.definition.id}/{kind}/held_pages")

    # ---- healing ---------------------------------------------------------------------------------

    async def settle(self, site: str, kind: str, final: bool = False) -> Settled:
        """Heal when due (``HEAL_MIN_PAGES`` held pages, twice as many as at a heal that failed, or
        ``final``) and hand pages back to be read. One heal of a site and kind at a time: while one runs
        (it awaits the database and maybe the LLM), other callbacks only hand back suspects."""
        state = self.sites.get(site)
        settled = Settled()
        if state is None:
            return settled
        settled.reread += self._release_suspects(state, kind)
        held = state.held[kind]
        due = len(held) >= max(self.min_pages, 2 * state.tried_at.get(kind, 0))
        if held and (due or final) and kind not in state.healing:
            state.healing.add(kind)
            try:
                await self._settle_held(state, kind, final, settled)
            finally:
                state.healing.discard(kind)
        while len(held) > self.max_held:  # bounded: the oldest goes back as it reads, or as parse_error
            self._give_up(state, kind, [held.pop(0)], settled)
        if final and state.suspects[kind]:
            settled.reread += [response for response, _fields in state.suspects[kind]]
            state.suspects[kind] = []
        return settled

    async def _settle_held(self, state: _Site, kind: str, final: bool, settled: Settled) -> None:
        site, held = state.definition.id, state.held[kind]
        before, pages = state.definition, list(held)
        heal = await self._heal(state, kind, pages)
        version = None
        if heal is not None and heal.healed:
            try:
                version = await self._record(state, kind, heal)
            except Exception:  # a heal nobody can see or review is not used: the pages stay held
                logger.exception("%s: could not store the %s heal as a version", site, kind)
                self._inc(f"heal/{site}/{kind}/errors")
        if version is None:
            state.tried_at[kind] = len(pages)
            if final:
                self._give_up(state, kind, pages, settled)
                del held[: len(pages)]
            return
        settled.definition, settled.version = state.definition, version
        settled.reread += pages
        del held[: len(pages)]  # pages held while the heal ran wait for the next settle
        # suspects were read before the heal: each is read with both definitions, the old one first
        for response, _fields in state.suspects[kind]:
            settled.reread.append(response)
            settled.merge_with[id(response)] = before
        state.suspects[kind] = []
        state.broken[kind].clear()
        state.tried_at.pop(kind, None)
        self.detector.reset(site, kind)
        self.memory.relearn(site, kind)

    def _give_up(self, state: _Site, kind: str, pages: list, settled: Settled) -> None:
        """Pages no heal could read: those the current definition still reads (a name, cards) go back as
        they read, with what is missing missing; the others end as ``parse_error``."""
        for response in pages:
            if kind == "detail":
                readable = bool(extract_detail(state.definition, response).get("full_name"))
            else:
                readable = bool(extract_list(state.definition, response).candidates)
            (settled.reread if readable else settled.given_up).append(response)
            self._inc(f"heal/{state.definition.id}/{kind}/{'unhealed' if readable else 'given_up'}")

    def _release_suspects(self, state: _Site, kind: str) -> list:
        """Suspect pages go back as they were once each of their missing fields showed up again on a later
        page; they stay while one is still missing page after page (it may be breaking)."""
        keep, back = [], []
        for response, fields in state.suspects[kind]:
            if any(self.detector.streak[(state.definition.id, kind, f)] for f in fields):
                keep.append((response, fields))
            else:
                back.append(response)
        state.suspects[kind] = keep
        return back

    async def _heal(self, state: _Site, kind: str, responses: list) -> Heal | None:
        site = state.definition.id
        raw = state.definition.raw
        memory = self.memory.as_relocation_memory(site, kind)
        try:
            if kind == "detail":  # what the pages show broken, and what the crawl saw break
                fields = set(missing_fields(raw, kind, responses, memory)) | state.broken[kind]
                heal = heal_detail(raw, responses, memory, [n for n in raw["detail"]["fields"] if n in fields])
            else:
                heal = heal_list(raw, responses, memory)
        except Exception:  # a heal that crashes must not take the crawl down: the pages end as parse_error
            logger.exception("%s: the %s heal failed", site, kind)
            self._inc(f"heal/{site}/{kind}/errors")
            return None
        if heal.failed and self.llm is not None:
            heal = await self.llm.improve(raw, kind, responses, heal)
        method = "llm" if any(p.method == "llm" for p in heal.proposals.values()) else "heuristic"
        self._inc(f"heals/{site}/{kind}/{method}/{'healed' if heal.healed else 'failed'}")
        logger.info(
            "%s: %s heal on %d pages: healed %s; not healed %s",
            site,
            kind,
            len(responses),
            ", ".join(sorted(heal.proposals)) or "nothing",
            ", ".join(f"{n} ({why})" for n, why in sorted(heal.failed.items())) or "nothing",
        )
        return heal

    async def _record(self, state: _Site, kind: str, heal: Heal) -> Version | None:
        site = state.definition.id
        confidence = heal.confidence(self.min_pages)
        origin = "llm" if any(p.method == "llm" for p in heal.proposals.values()) else "heuristic"
        async with await self._connection() as conn:
            version = await versions.record(
                conn,
                site=site,
                definition=heal.definition,
                parent_sha256=state.version.sha256 if state.version else state.base_sha256,
                base_sha256=state.base_sha256,
                origin=origin,
                confidence=confidence,
                changes=heal.changes(state.definition.raw),
                verified_on=[{"kind": kind, "pages": heal.pages, "fields": heal.verified}],
                auto_accept=self.auto_accept,
            )
        if version is None:
            logger.warning("%s: the %s heal is a definition a person rejected: not used", site, kind)
            return None
        state.version = version
        state.definition = _replace(state.definition, version.definition, version.sha256)
        self._inc(f"heal/{site}/versions/{version.status}")
        logger.warning(
            "%s: healed the %s pages as version %s (%s, confidence %.2f, %s)",
            site,
            kind,
            version.id,
            origin,
            confidence,
            version.status,
        )
        return version


def _read(name: str, value) -> bool:
    return value not in (None, "", [])


def _valid(name: str, value) -> bool:
    """The field read a value of its kind: its first value is tested (a phone parse per value on every
    page would cost more than the extraction; a drift to another kind shows on the first value too)."""
    if value in (None, "", []):
        return False
    return kinds.looks_valid(name, value[0] if isinstance(value, list) else value)


def _replace(definition: SiteDefinition, raw: dict, sha256: str) -> SiteDefinition:
    raw = {**raw, "base_url": definition.raw.get("base_url", raw.get("base_url"))}
    return dataclasses.replace(definition, raw=raw, sha256=sha256)
