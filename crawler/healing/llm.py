"""LLM proposals for the fields heuristics could not heal, verified exactly as heuristic ones are.

The pages are condensed and masked (crawler.ai.masking: no name, phone, e-mail or address leaves the
process); the model answers a JSON schema (one spec per field: css or xpath, optional regex and filters);
each proposal is read on every broken page and kept only if its values look like the field's kind on
enough of them. Up to ``ROUNDS`` rounds; the next round is told what failed (counts and reasons, never
values). Budget, breaker, cache and metrics are the client's (crawler.ai.client).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re

from crawler.ai import LLMClient, condense_html
from crawler.extraction.filters import FILTERS
from crawler.healing.heal import Heal, verify
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
    '{"jsonld": {"type": "Person", "path": "telephone"}}. Answer only the JSON object asked for.'
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
        "filters": {"type": "array", "items": {"type": "string"}},
    },
}
ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"fields": {"type": "object", "additionalProperties": _spec_schema}},
    "required": ["fields"],
}


def structure_hash(text: str) -> str:
    """The page's shape without its words: tags, classes and attribute names (a cache key shared by every
    page of a layout, whatever person it shows)."""
    shape = re.sub(r">[^<]*<", "><", text)
    shape = re.sub(r'="[^"]*"|=\'[^\']*\'', "", shape)
    return hashlib.sha256(shape.encode()).hexdigest()[:32]


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
    filters = [f for f in spec.get("filters") or [] if f in FILTERS and FILTERS[f] is not None]
    if filters:
        clean["filters"] = filters
    elif isinstance(old_spec, dict) and old_spec.get("filters"):
        clean["filters"] = old_spec["filters"]
    if isinstance(old_spec, dict) and "sep" in old_spec and sources[0] != "jsonld":
        clean["sep"] = old_spec["sep"]
    return clean


class LLMHealer:
    def __init__(self, client: LLMClient):
        self.client = client

    @classmethod
    def from_settings(cls, settings) -> LLMHealer | None:
        client = LLMClient.from_settings(settings)
        return cls(client) if client is not None else None

    async def improve(self, raw: dict, kind: str, responses: list, heal: Heal) -> Heal:
        """``heal`` with the fields it failed on proposed by the model and verified on ``responses``."""
        section = "detail" if kind == "detail" else "list"
        wanted = [f for f in heal.failed if f != "_card" and f in raw[section]["fields"]]
        if not wanted or not responses:
            return heal
        pages = [condense_html(r.text) for r in responses[:PAGES_SHOWN]]
        cache_base = structure_hash(pages[0]) + ":" + ",".join(sorted(wanted))
        feedback = ""
        for round_number in range(1, ROUNDS + 1):
            cache_key = f"{cache_base}:{round_number}:{hashlib.sha256(feedback.encode()).hexdigest()[:8]}"
            answer = await self.client.complete_json(
                "heal", SYSTEM, self._prompt(kind, wanted, pages, feedback), ANSWER_SCHEMA, cache_key=cache_key
            )
            if answer is None:
                break  # budget, breaker, error: the heuristics' heal stands
            accepted, feedback = self._try(raw, section, kind, responses, heal, answer.data.get("fields") or {}, wanted)
            for name, proposal in accepted.items():
                heal.proposals[name] = proposal
                heal.definition[section]["fields"][name] = proposal.spec
                heal.failed.pop(name, None)
            wanted = [f for f in wanted if f not in accepted]
            if not wanted:
                break
            if answer.cached and feedback:  # a cached answer that no longer verifies is not asked again
                await self.client.forget("heal", cache_key)
        return heal

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
        proposals = {}
        problems = []
        for name in wanted:
            spec = answered.get(name)
            clean = _clean(spec, raw[section]["fields"].get(name)) if isinstance(spec, dict) else None
            if clean is None:
                problems.append(f"{name}: no usable selector")
                continue
            proposals[name] = Proposal(name, clean, LLM_SCORE, LLM_MARGIN, len(responses), 0, method="llm")
        if not proposals:
            return {}, "; ".join(problems)
        trial_definition = copy.deepcopy(heal.definition)
        for name, proposal in proposals.items():
            trial_definition[section]["fields"][name] = proposal.spec
        trial = Heal(kind, trial_definition, dict(proposals), pages=len(responses), base=heal.definition)
        try:
            trial = verify(trial, responses, min_pages=min(len(responses), 2))
        except Exception as exc:  # a selector the parser refuses: the model is told, nothing else breaks
            return {}, "; ".join([*problems, f"a selector could not be used ({type(exc).__name__})"])
        for name, why in trial.failed.items():
            problems.append(f"{name}: {why}")
        for name, proposal in trial.proposals.items():
            proposal.units_found = trial.verified.get(name, 0)
        return trial.proposals, "; ".join(problems)
