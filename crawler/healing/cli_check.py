"""``python -m crawler.healing check``: read pages with a site's current definition, say which fields work,
learn from them, heal the broken ones, and print or store the healed definition (in the spirit of ``scrapy
check``).

    python -m crawler.healing check SITE_OR_YAML --url URL [--url URL ...] [--kind list|detail] [--print] [--write]

1. The definition: ``spiders/sites/<SITE>.yaml`` or the YAML file given, read with its current version
   (``versions.current`` for the file's sha256: the one every crawl of that YAML reads with), else as it is.
2. The pages (crawler.healing.cli_fetch); their kind: ``--kind``, else ``list`` when the list spec reads
   cards on them, else ``detail``.
3. The report, on stderr: each field ``ok``, ``missing`` (no values on most pages, or a remembered section
   lost) or ``suspicious`` (values not of the field's kind), with pages with values / pages; counts and field
   names only, never a value or a URL.
4. Broken fields are healed (``heal_detail`` / ``heal_list``, then the LLM when ``OPENAI_API_KEY`` is set),
   verified across the given pages; the pages are read again with the heal and reported.
5. The selector memory learns from the pages that work, and is flushed to PostgreSQL (with or without
   ``--write``): the next crawl and the next check heal with it.
6. ``--print``: the whole (healed) definition as YAML on stdout, validated as a site definition.
   ``--write``: the heal stored as a version (origin heuristic or llm; active when its confidence clears
   ``HEAL_AUTO_ACCEPT``, else quarantined), verified on page counts and page structure hashes, never URLs.

Exit 0 when every field reads (healed or not), 1 when one stays broken, 2 for bad input.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from crawler.config import validate
from crawler.db.pool import close_pools, get_pool
from crawler.extraction.definitions import (
    DEFAULT_DIRECTORY,
    DefinitionError,
    SiteDefinition,
    load_definition,
    load_definition_text,
)
from crawler.extraction.engine import detail_not_found, extract_detail, extract_list, marker_matches
from crawler.healing import values as kinds
from crawler.healing import versions
from crawler.healing.cli_fetch import BrowserFetcher, FetchError, HttpFetcher
from crawler.healing.heal import Heal, heal_detail, heal_list, missing_fields
from crawler.healing.memory import SelectorMemory
from crawler.notation import parse_pattern, pattern_in
from crawler.runtime import check_database

MIN_VALID = 0.9  # share of a page's values that must look like the field's kind (as heal.missing_fields)


class InputError(ValueError):
    """Bad input (a site, a file, a URL, a version number): one line, exit 2."""


def resolve(site_or_yaml: str) -> SiteDefinition:
    """A site id (spiders/sites/<id>.yaml) or a YAML file anywhere."""
    path = Path(site_or_yaml)
    if path.suffix not in (".yaml", ".yml") and "/" not in site_or_yaml and not path.is_file():
        path = DEFAULT_DIRECTORY / f"{site_or_yaml}.yaml"
        if not path.is_file():
            raise InputError(
                f"{site_or_yaml}: no such site (no spiders/sites/{site_or_yaml}.yaml; or give a YAML path)"
            )
    try:
        return load_definition(path)
    except FileNotFoundError:
        raise InputError(f"{site_or_yaml}: no such file") from None
    except OSError as exc:
        raise InputError(f"{site_or_yaml}: cannot read ({exc.strerror or exc})") from None
    except DefinitionError as exc:
        raise InputError(str(exc)) from None


def as_definition(raw: dict, like: SiteDefinition) -> SiteDefinition:
    raw = {**raw, "base_url": like.raw.get("base_url", raw.get("base_url"))}
    return SiteDefinition(
        raw["id"],
        raw.get("name", raw["id"]),
        raw.get("base_url", ""),
        True,
        raw.get("render", "http"),
        raw,
        versions.definition_sha256(raw),
        like.path,
    )


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases (a filter list shared by two fields is written twice)."""

    def ignore_aliases(self, data) -> bool:
        return True


def as_yaml(raw: dict) -> str:
    return yaml.dump(raw, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=120)


def ordered_like(value, model):
    """``value`` with its mappings' keys in ``model``'s order (a version comes back from jsonb with its keys
    reordered; a diff or an export against the YAML should show only what changed)."""
    if isinstance(value, dict):
        model = model if isinstance(model, dict) else {}
        keys = [k for k in model if k in value] + [k for k in value if k not in model]
        return {k: ordered_like(value[k], model.get(k)) for k in keys}
    if isinstance(value, list):
        model = model if isinstance(model, list) else []
        return [ordered_like(v, model[i] if i < len(model) else None) for i, v in enumerate(value)]
    return value


# ---- what the pages read -------------------------------------------------------------------------


@dataclass
class FieldReport:
    name: str
    pages: int = 0
    with_values: int = 0  # pages where the field read any value
    invalid: int = 0  # pages where its values are not of its kind
    status: str = "ok"
    why: str = ""  # a missing field that reads on most pages: a section it used to read is not read

    def line(self) -> str:
        extra = f", values not of its kind on {self.invalid}" if self.invalid else ""
        return f"{self.status:<10} {self.with_values}/{self.pages}{extra}{self.why}"


def _items(value) -> list:
    items = value if isinstance(value, list) else [value]
    return [v for v in items if v not in (None, "", [])]


def page_rows(definition: SiteDefinition, kind: str, page) -> list[dict]:
    if kind == "detail":
        return [extract_detail(definition, page)]
    return extract_list(definition, page).candidates


def read_report(definition: SiteDefinition, kind: str, pages: list, memory: dict) -> dict[str, FieldReport]:
    """{field: FieldReport} of the pages (list pages: ``_card`` counts pages with cards)."""
    section = definition.raw["detail" if kind == "detail" else "list"]["fields"]
    report = {name: FieldReport(name, pages=len(pages)) for name in section}
    if kind == "list":
        report = {"_card": FieldReport("_card", pages=len(pages)), **report}
    for page in pages:
        rows = page_rows(definition, kind, page)
        if kind == "list" and rows:
            report["_card"].with_values += 1
        for name in section:
            found = [v for row in rows for v in _items(row.get(name))]
            if found:
                report[name].with_values += 1
                if name in kinds.HEALABLE and kinds.share_valid(name, found) < MIN_VALID:
                    report[name].invalid += 1
    broken = set(missing_fields(definition.raw, kind, pages, memory if kind == "detail" else None))
    for name, row in report.items():
        if row.invalid:
            row.status = "suspicious"
        elif row.with_values * 2 < row.pages or (name == "_card" and row.with_values < row.pages):
            row.status = "missing"
        elif name in broken:
            row.status = "missing"
            row.why = ", a section under a remembered label not read" if memory else ""
    return report


def guess_kind(definition: SiteDefinition, pages: list) -> str:
    """``list`` when the list spec reads cards on most pages (not just the page's own link), else detail."""
    reads = 0
    for page in pages:
        candidates = extract_list(definition, page).candidates
        reads += bool(candidates) and [c.get("url") for c in candidates] != [page.url]
    return "list" if pages and reads * 2 >= len(pages) else "detail"


def list_actions(raw: dict) -> list:
    return raw["list"].get("actions") or next((e["actions"] for e in raw["search"] if e.get("actions")), [])


async def fetch_pages(definition: SiteDefinition, urls: list[str], kind: str | None) -> tuple[list, str]:
    """The pages and their kind."""
    headers = definition.raw.get("headers") or {}
    if definition.render != "browser":
        fetcher = HttpFetcher(headers)
        pages = [await asyncio.to_thread(fetcher.get, n, url) for n, url in enumerate(urls, 1)]
        return pages, kind or guess_kind(definition, pages)
    chosen = {"kind": kind}

    def actions_of(first) -> list:
        if chosen["kind"] is None:  # the first page says which kind they all are
            chosen["kind"] = guess_kind(definition, [first])
        return list_actions(definition.raw) if chosen["kind"] == "list" else definition.raw["detail"].get("actions")

    # the kind unknown: the optional actions of both kinds first (a terms modal hides what tells them apart)
    both = [*list_actions(definition.raw), *(definition.raw["detail"].get("actions") or [])]
    prelude = [a for a in both if a.get("optional")] if kind is None else []
    async with BrowserFetcher(headers) as browser:
        pages = [await browser.get(n, url, actions_of, prelude) for n, url in enumerate(urls, 1)]
        if browser.failed_actions:
            print(f"note: {browser.failed_actions} page action(s) failed; pages read as they were", file=sys.stderr)
    return pages, kind or guess_kind(definition, pages)


def readable(definition: SiteDefinition, kind: str, pages: list) -> list:
    """The pages a heal may read: not a block page, not a "not found" or "no results" page (those say
    nothing about the fields); each left out is said, by its position."""
    kept = []
    for number, page in enumerate(pages, 1):
        text = page.text if hasattr(page, "text") else ""
        blocked = [
            k
            for k, signatures in definition.blocks.items()
            if any(pattern_in(parse_pattern(s), text) for s in signatures)
        ]
        if blocked:
            _say(f"note: --url {number} matches the {blocked[0]} signature: left out")
        elif kind == "detail" and detail_not_found(definition, page):
            _say(f"note: --url {number} is a not-found page (the detail.not_found marker): left out")
        elif (
            kind == "list"
            and not extract_list(definition, page).candidates
            and marker_matches(definition.raw["list"].get("no_results"), page)
        ):
            _say(f"note: --url {number} is a no-results page (the list.no_results marker): left out")
        else:
            kept.append(page)
    if not kept:
        raise InputError(f"--url: none of the {len(pages)} page(s) can show the {kind} fields")
    return kept


# ---- learning ------------------------------------------------------------------------------------


def learn(memory: SelectorMemory, definition: SiteDefinition, kind: str, pages: list, ok: set[str]) -> int:
    """Counts of every detail page; prints of the fields that work on the pages whose full name reads.
    Returns the pages learned from."""
    site, learned = definition.id, 0
    section = definition.raw["detail" if kind == "detail" else "list"]["fields"]
    for page in pages:
        if kind == "detail":
            traces: dict = {}
            record = extract_detail(definition, page, traces)
            for name in section:
                if name in kinds.HEALABLE:
                    memory.count(site, "detail", name, _valid(name, record.get(name)))
            if not _valid("full_name", record.get("full_name")):
                continue
            values = {n: v for n, v in record.items() if n in ok and _valid(n, v)}
            memory.learn(site, "detail", section, traces, values, node=page.selector)
            learned += 1
            continue
        card_traces: list = []
        listing = extract_list(definition, page, traces=card_traces)
        cards = [t["_card"].elements[0] for t in card_traces if t["_card"].elements]
        if not cards or "_card" not in ok:
            continue
        memory.learn_card(site, cards)
        for card, traces, candidate in zip(cards, card_traces, listing.candidates, strict=False):
            values = {n: v for n, v in candidate.items() if n in ok and _valid(n, v)}
            memory.learn(site, "list", section, traces, values, node=card)
        learned += 1
    return learned


def _valid(name: str, value) -> bool:
    found = _items(value)
    return bool(found) and (name not in kinds.HEALABLE or kinds.share_valid(name, found) >= MIN_VALID)


# ---- the command ---------------------------------------------------------------------------------


def check_command(settings, args) -> int:
    definition = resolve(args.site)
    for number, url in enumerate(args.url, 1):
        if not url.startswith(("http://", "https://")):
            raise InputError(f"--url {number}: expected an http(s):// URL")
    validate(settings)
    check_database(settings)
    return asyncio.run(_closing(check(settings, definition, args)))


async def _closing(work):
    try:
        return await work
    finally:
        await close_pools()


def _say(text: str) -> None:
    print(text, file=sys.stderr)


async def check(settings, yaml_definition: SiteDefinition, args) -> int:
    site = yaml_definition.id
    memory = SelectorMemory()
    pool = await get_pool(settings)
    async with pool.connection() as conn:
        version = await versions.current(conn, site, yaml_definition.sha256)
        await memory.load(conn, [site])
    current = (
        as_definition(ordered_like(version.definition, yaml_definition.raw), yaml_definition)
        if version
        else yaml_definition
    )
    try:
        pages, kind = await fetch_pages(current, args.url, args.kind)
    except FetchError as exc:
        raise InputError(str(exc)) from None
    read_with = (
        f"version {version.id} ({version.origin}, {version.status})"
        if version
        else f"the YAML (sha {yaml_definition.sha256[:12]})"
    )
    pages = readable(current, kind, pages)
    _say(f"{site} {kind}: {len(pages)} page(s), read with {read_with}")
    relocation_memory = memory.as_relocation_memory(site, kind)
    before = read_report(current, kind, pages, relocation_memory)
    broken = [n for n, r in before.items() if r.status != "ok" and (n in kinds.HEALABLE or n == "_card")]
    heal = None
    if broken:
        try:
            heal = await _heal(settings, current.raw, kind, pages, relocation_memory, broken)
        except Exception as exc:  # a heal that crashes is reported by its type only: its text may quote a page
            _say(f"{site} {kind}: the heal failed ({type(exc).__name__}); the fields are reported as read")
    final = as_definition(heal.definition, yaml_definition) if heal and heal.healed else current
    after = dict(before)
    if final is not current:
        # healed fields are judged by what they read (the heal verified them); the others did not change
        healed = read_report(final, kind, pages, None)
        after.update({name: healed[name] for name in heal.proposals})
    for name, row in before.items():
        line = f"  {name:<12} {row.line()}"
        if heal and name in heal.proposals:
            p = heal.proposals[name]
            line += f"  -> healed ({p.method}, score {p.score:.2f}, margin {p.margin:.2f}): {after[name].line()}"
        elif heal and name in heal.failed:
            line += f"  -> not healed ({heal.failed[name]})"
        _say(line)
    ok = {n for n, r in after.items() if r.status == "ok"}
    learned = learn(memory, final, kind, pages, ok)
    async with pool.connection() as conn:
        await memory.flush(conn)
    _say(f"selector memory: learned from {learned} of {len(pages)} page(s), stored")
    if args.print:
        text = as_yaml(final.raw)
        try:
            load_definition_text(text, f"{site}.yaml")
        except DefinitionError as exc:
            raise InputError(f"the healed definition does not load: {exc}") from None
        sys.stdout.write(text)
    if args.write:
        await _write(settings, pool, yaml_definition, version, kind, pages, heal)
    still = sorted(n for n, r in after.items() if r.status != "ok" and (n in kinds.HEALABLE or n == "_card"))
    if still:
        _say(f"{site} {kind}: still broken: {', '.join(still)}")
    return 1 if still else 0


async def _heal(settings, raw: dict, kind: str, pages: list, memory: dict, broken: list[str]) -> Heal:
    if kind == "detail":
        heal = heal_detail(raw, pages, memory, fields=[n for n in broken if n != "_card"])
    else:
        heal = heal_list(raw, pages, memory)
    if heal.failed:
        from crawler.healing.llm import LLMHealer

        llm = LLMHealer.from_settings(settings)
        if llm is not None:
            try:
                heal = await llm.improve(raw, kind, pages, heal)
            finally:
                await llm.client.aclose()
    return heal


async def _write(settings, pool, yaml_definition, version, kind: str, pages: list, heal: Heal | None) -> None:
    if heal is None or not heal.healed:
        _say("--write: nothing healed, no version stored")
        return
    from crawler.healing.llm import structure_hash

    origin = "llm" if any(p.method == "llm" for p in heal.proposals.values()) else "heuristic"
    async with pool.connection() as conn:
        stored = await versions.record(
            conn,
            site=yaml_definition.id,
            definition=heal.definition,
            parent_sha256=version.sha256 if version else yaml_definition.sha256,
            base_sha256=yaml_definition.sha256,
            origin=origin,
            confidence=heal.confidence(settings.getint("HEAL_MIN_PAGES", 3)),
            changes=heal.changes(heal.base),
            verified_on=[
                {
                    "kind": kind,
                    "pages": len(pages),
                    "fields": heal.verified,
                    "structure": sorted({structure_hash(p.text) for p in pages}),
                    "by": "check",
                }
            ],
            auto_accept=settings.getfloat("HEAL_AUTO_ACCEPT", 0.75),
        )
    _say(
        f"--write: version {stored.id} ({stored.origin}, {stored.status}, confidence {stored.confidence:.2f})"
        + ("; accept it with `python -m crawler.healing accept " + str(stored.id) + "`" if stored.quarantined else "")
    )
