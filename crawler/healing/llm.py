"""LLM proposals for the fields heuristics could not heal, verified exactly as heuristic ones are.

The pages are condensed and masked (crawler.ai.masking: no name, phone, e-mail or address leaves the
process); the model answers a JSON schema (one spec per field: css or xpath, optional regex and filters);
each proposal is read on every broken page and kept only if its values look like the field's kind on
enough of them. Up to ``ROUNDS`` rounds; the next round is told what failed (counts and reasons, never
values). Budget, breaker, cache and metrics are the client's (crawler.ai.client); the cache key is the
pages' structure (``structure_hash``: tag paths without words or counts, so another page set of the same
layout is answered from the cache), the fields asked, the round and the feedback it carries. ``improve``
never raises: on any failure of the LLM path the heuristics' heal stands.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re

import lxml.html
from lxml import etree

from crawler.ai import LLMClient, condense_html
from crawler.extraction.definitions import DefinitionError, validate
from crawler.extraction.engine import Node, _items, field_values
from crawler.extraction.filters import FILTERS, check_filter
from crawler.healing.heal import Heal, _definition, reserved_elements, verify
from crawler.healing.relocate import Proposal
from crawler.healing.values import kind_of

logger = logging.getLogger(__name__)
ROUNDS = 3
PAGES_SHOWN = 2  # several pages make better wrappers (AutoCrawler): two, within the prompt size
LLM_SCORE, LLM_MARGIN = 0.75, 0.05  # confidence 0.8 on HEAL_MIN_PAGES pages: an LLM heal clears 0.75 only so

SYSTEM = (
    "You repair web scrapers. You get the condensed HTML of pages of one kind from one website, with every "
    "personal value replaced by a typed placeholder such as [NAME], [PHONE], [EMAIL], [ADDRESS], [NUMBER]. "
    "For each field asked, answer one CSS selector (or XPath) that selects the nodes holding that field's "
    "values on every page, relative to the card for result pages. Prefer class names, ids, itemprop and "
    "labels over positions. Use `::text` or `::attr(name)` in CSS when the value is a text or an attribute. "
    "Add `regex` (one capture group) when the value is part of a longer text. For JSON-LD data answer "
    '{"jsonld": {"type": "Person", "path": "telephone"}}. Optional `filters`, applied in order to each value: '
    '"int", "digits", "lower", "title", "strip", "month", "parse_age_text" (an age from a text), "last_first" '
    '(a name written last name first, turned around), "city_state" (the city and state of an address), '
    '"cfemail" (an obfuscated e-mail attribute), {"split": "SEP"} (one value per part; SEP a string or '
    '/regex/), {"replace": ["/regex/", "new"]}, {"re": "regex with one group"}. Answer only the JSON object '
    "asked for."
)
FIELD_HELP = {
    "name": "a person's full name",
    "age": "the person's age in years (a number)",
    "age_range": "an age or an age range such as 'in their 40s'",
    "year": "a birth year",
    "month": "a birth month",
    "city_state": "the City, ST of each address",
    "address": "full street addresses (street, city, state, ZIP)",
    "phone": "phone numbers",
    "email": "e-mail addresses",
    "url": "the link to the person's detail page",
}
_spec_schema = {
    "type": "object",
    "properties": {
        "css": {"type": "string"},
        "xpath": {"type": "string"},
        "regex": {"type": "string"},
        "jsonld": {
            "type": "object",
            "properties": {"type": {"type": "string"}, "path": {"type": "string"}},
            "required": ["path"],
        },
        # a filter is a name or {name: argument}, as in the site format; an unknown one is dropped, not fatal
        "filters": {"type": "array", "items": {"type": ["string", "object"]}},
    },
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"fields": {"type": "object", "additionalProperties": _spec_schema}},
    "required": ["fields"],
}


def structure_hash(*pages: str) -> str:
    """The pages' shape without their words or counts: the set of tag paths (tags, classes, attribute
    names), so every page set of a layout shares it whoever it shows and however many phones or
    relatives they have (a cache key; the answer is verified on the pages anyway)."""
    paths: set[str] = set()
    for text in pages:
        try:
            root = lxml.html.document_fromstring(text)
        except (etree.ParserError, ValueError):  # not HTML: its tag sequence, as written
            paths.add(re.sub(r'>[^<]*<|="[^"]*"', "", text))
            continue
        paths.update(_tag_paths(root))
    return hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()[:32]


def _tag_paths(root) -> set[str]:
    """Every element's path from the root as tags with classes and attribute names (no recursion: a
    page may nest deeper than Python's stack)."""
    found: dict = {root: ""}
    for element in root.iterdescendants():
        if not isinstance(element.tag, str):  # comments ("37 more tr.row") and the like
            continue
        classes = "".join(f".{c}" for c in sorted((element.get("class") or "").split()))
        names = "".join(f"[{a}]" for a in sorted(element.attrib) if a != "class")
        found[element] = f"{found.get(element.getparent(), '')}/{element.tag}{classes}{names}"
    return set(found.values()) - {""}


def _usable_filter(spec) -> bool:
    """A filter of the site format (a known name, or one {name: argument} the format accepts)."""
    if isinstance(spec, str):
        return spec in FILTERS and FILTERS[spec] is not None
    if not isinstance(spec, dict) or len(spec) != 1:
        return False
    try:
        return check_filter(spec) is None
    except Exception:  # an argument of the wrong type ({"split": [1]}): not a filter
        return False


def _clean(spec: dict, old_spec) -> dict | None:
    """The answer as a field spec of the site format, or None if it is not one."""
    sources = [k for k in ("css", "xpath", "jsonld") if spec.get(k)]
    if len(sources) != 1:
        return None
    clean = {sources[0]: spec[sources[0]]}
    if spec.get("regex"):
        try:
            re.compile(spec["regex"])
        except re.error:
            return None
        clean["regex"] = spec["regex"]
    filters = [f for f in spec.get("filters") or [] if _usable_filter(f)]
    if filters:
        clean["filters"] = filters
    elif isinstance(old_spec, dict) and old_spec.get("filters"):
        clean["filters"] = old_spec["filters"]
    if isinstance(old_spec, dict) and "sep" in old_spec and sources[0] != "jsonld":
        clean["sep"] = old_spec["sep"]
    return clean


def _invalid(definition: dict, section: str, name: str, spec: dict) -> str | None:
    """Why the definition with ``spec`` for the field would not load (the site format's own check, which a
    stored version must pass), as "key path: reason"; None when it loads."""
    trial = copy.deepcopy(definition)
    trial[section]["fields"][name] = spec
    try:
        validate(trial, f"{definition.get('id', 'site')}.yaml")
    except DefinitionError as exc:
        where_and_why = str(exc).split(": ", 1)[-1]
        # only this field's own faults count (whatever else the definition holds is not the answer's doing)
        return where_and_why if where_and_why.startswith(f"{section}.fields.{name}") else None
    return None


def _taken(heal: Heal, section: str, proposals: dict, responses: list) -> dict[str, str]:
    """{proposed field: the field of the same kind whose nodes it reads}: a working field's (relatives
    read from the aliases' section), or another proposal's (both then refused)."""
    specs = heal.definition[section]["fields"]
    if section == "detail":
        contexts = [Node(r, selector=r.selector) for r in responses]
    else:  # card fields are read inside the cards
        contexts = [node for r in responses for node in _items(_definition(heal.definition), r)]
    claims = {name: reserved_elements({name: p.spec}, [], responses, cards=contexts) for name, p in proposals.items()}
    working = {n: s for n, s in specs.items() if n not in heal.failed and n not in proposals and not n.startswith("_")}
    taken = {}
    for name, mine in claims.items():
        kind = kind_of(name)
        same_kind = {n: s for n, s in working.items() if kind_of(n) == kind}
        theirs = reserved_elements(same_kind, [], responses, cards=contexts) if same_kind else {}
        for other, claim in claims.items():
            if other != name and kind_of(other) == kind:
                theirs.update(claim)
        shared = [theirs[key][0] for key in mine if key in theirs]
        if shared:
            taken[name] = shared[0]
    return taken


def _unusable(spec: dict, response) -> str | None:
    """Why the parser refuses the spec on a page (the error's type), or None when it reads."""
    try:
        field_values(spec, Node(response))
    except Exception as exc:  # an XPath or CSS the parser cannot read, a regex lxml refuses...
        return type(exc).__name__
    return None


class LLMHealer:
    def __init__(self, client: LLMClient):
        self.client = client

    @classmethod
    def from_settings(cls, settings) -> LLMHealer | None:
        client = LLMClient.from_settings(settings)
        return cls(client) if client is not None else None

    @classmethod
    def from_crawler(cls, crawler) -> LLMHealer | None:
        """On the crawler's one LLM client (its shared Redis client; closed when the engine stops), or None
        without a key: a crawl's healer should take this rather than a client of its own never closed."""
        client = LLMClient.from_crawler(crawler)
        return cls(client) if client is not None else None

    async def improve(self, raw: dict, kind: str, responses: list, heal: Heal) -> Heal:
        """``heal`` with the fields it failed on proposed by the model and verified on ``responses``.

        Never raises: whatever goes wrong on the LLM path, the heuristics' heal stands (fields are
        changed only once verified, so a heal cut short is still a consistent one)."""
        try:
            await self._improve(raw, kind, responses, heal)
        except Exception as exc:  # the crawl must not fail on its optional LLM step (no value in the log)
            logger.warning("LLM %s heal stopped (%s): the heuristic heal stands", kind, type(exc).__name__)
        return heal

    async def _improve(self, raw: dict, kind: str, responses: list, heal: Heal) -> None:
        section = "detail" if kind == "detail" else "list"
        wanted = [f for f in heal.failed if f != "_card" and f in raw[section]["fields"]]
        if not wanted or not responses:
            return
        pages = [condense_html(r.text) for r in responses[:PAGES_SHOWN]]
        cache_base = structure_hash(*pages) + ":" + ",".join(sorted(wanted))
        feedback = ""
        problems: dict[str, str] = {}
        for round_number in range(1, ROUNDS + 1):
            cache_key = f"{cache_base}:{round_number}:{hashlib.sha256(feedback.encode()).hexdigest()[:8]}"
            answer = await self.client.complete_json(
                "heal", SYSTEM, self._prompt(kind, wanted, pages, feedback), ANSWER_SCHEMA, cache_key=cache_key
            )
            if answer is None:
                break  # budget, breaker, error: the heuristics' heal stands
            accepted, problems = self._try(raw, section, kind, responses, heal, answer.data.get("fields") or {}, wanted)
            feedback = "; ".join(f"{name}: {why}" for name, why in problems.items())
            for name, proposal in accepted.items():
                heal.proposals[name] = proposal
                heal.definition[section]["fields"][name] = proposal.spec
                heal.verified[name] = proposal.units_found  # the version records the pages it was verified on
                heal.failed.pop(name, None)
            wanted = [f for f in wanted if f not in accepted]
            if not wanted:
                break
            if answer.cached and feedback:  # a cached answer that no longer verifies is not asked again
                await self.client.forget("heal", cache_key)
        for name, why in problems.items():  # what a person reviewing the heal sees: both attempts
            if name in heal.failed:
                heal.failed[name] = f"{heal.failed[name]}; the LLM's proposal: {why}"

    def _prompt(self, kind: str, fields: list[str], pages: list[str], feedback: str) -> str:
        described = "a person profile page" if kind == "detail" else "a search result page (one card per person)"
        lines = [
            f"Page kind: {described}.",
            "Fields: " + "; ".join(f"{f}: {FIELD_HELP.get(kind_of(f), f)}" for f in fields) + ".",
            'Answer: {"fields": {"<field>": {"css": "...", "regex": "...", "filters": ["..."]}}}',
        ]
        if feedback:
            lines.append("Your previous answer failed: " + feedback)
        for number, page in enumerate(pages, 1):
            lines.append(f"--- page {number} ---\n{page}")
        return "\n".join(lines)

    def _try(self, raw, section, kind, responses, heal, answered: dict, wanted: list[str]):
        """(the proposals that verify, {field: why not} for the others)."""
        proposals = {}
        problems: dict[str, str] = {}
        for name in wanted:
            spec = answered.get(name)
            clean = _clean(spec, raw[section]["fields"].get(name)) if isinstance(spec, dict) else None
            if clean is None:
                problems[name] = "no usable selector"
                continue
            invalid = _invalid(heal.definition, section, name, clean)
            if invalid:  # e.g. a card field read from the page root: every card would get the first card's value
                problems[name] = invalid
                continue
            refused = _unusable(clean, responses[0])
            if refused:  # one field's broken selector must not sink the others' good ones in verification
                problems[name] = f"the selector could not be used ({refused})"
                continue
            proposals[name] = Proposal(name, clean, LLM_SCORE, LLM_MARGIN, len(responses), 0, method="llm")
        try:
            taken = _taken(heal, section, proposals, responses)
        except Exception as exc:  # a selector that fails on another page: the model is told, nothing else breaks
            problems.update(dict.fromkeys(proposals, f"a selector could not be used ({type(exc).__name__})"))
            return {}, problems
        for name, other in taken.items():
            # values of the right kind, but another field's: verification alone would accept them
            problems[name] = f"reads what {other} reads"
            del proposals[name]
        if not proposals:
            return {}, problems
        trial_definition = copy.deepcopy(heal.definition)
        for name, proposal in proposals.items():
            trial_definition[section]["fields"][name] = proposal.spec
        trial = Heal(kind, trial_definition, dict(proposals), pages=len(responses), base=heal.definition)
        try:
            trial = verify(trial, responses, min_pages=min(len(responses), 2))
        except Exception as exc:  # a selector that fails on another page: the model is told, nothing else breaks
            problems.update(dict.fromkeys(proposals, f"a selector could not be used ({type(exc).__name__})"))
            return {}, problems
        problems.update(trial.failed)
        for name, proposal in trial.proposals.items():
            proposal.units_found = trial.verified.get(name, 0)
        return trial.proposals, problems
