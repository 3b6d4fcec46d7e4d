"""Fuzzy dedup of person listings: the same person seen twice (across pages or
sites, with a nickname, a typo, another phone format) joins one listing group.

Blocking keeps it cheap: listings are compared only within their block (the
scan and the last name's first letter, which survives the typos and spelling
variants that break phonetic codes), and a block keeps a bounded number of groups.
A candidate joins the best-scoring group at or above the threshold; the
decision and its evidence (scores only, no values) are returned for the audit
table. The state is per process and per scan: it holds personal values, so it
never goes to Redis.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from crawler.items import PersonListing

NICKNAMES = {
    "bill": "william",
    "will": "william",
    "billy": "william",
    "bob": "robert",
    "rob": "robert",
    "bobby": "robert",
    "jim": "james",
    "jimmy": "james",
    "jack": "john",
    "johnny": "john",
    "mike": "michael",
    "dave": "david",
    "rick": "richard",
    "dick": "richard",
    "joe": "joseph",
    "tom": "thomas",
    "charlie": "charles",
    "chuck": "charles",
    "chris": "christopher",
    "dan": "daniel",
    "danny": "daniel",
    "matt": "matthew",
    "tony": "anthony",
    "don": "donald",
    "steve": "steven",
    "andy": "andrew",
    "drew": "andrew",
    "josh": "joshua",
    "ken": "kenneth",
    "kenny": "kenneth",
    "tim": "timothy",
    "ron": "ronald",
    "ed": "edward",
    "eddie": "edward",
    "jeff": "jeffrey",
    "jake": "jacob",
    "nick": "nicholas",
    "jon": "jonathan",
    "ben": "benjamin",
    "pat": "patricia",
    "patty": "patricia",
    "jen": "jennifer",
    "jenny": "jennifer",
    "liz": "elizabeth",
    "beth": "elizabeth",
    "betty": "elizabeth",
    "barb": "barbara",
    "sue": "susan",
    "jess": "jessica",
    "maggie": "margaret",
    "peggy": "margaret",
    "sandy": "sandra",
    "kim": "kimberly",
    "mandy": "amanda",
    "dot": "dorothy",
    "mel": "melissa",
    "debbie": "deborah",
    "deb": "deborah",
    "steph": "stephanie",
    "becky": "rebecca",
    "cindy": "cynthia",
    "kathy": "kathleen",
    "kate": "kathleen",
    "katie": "katherine",
    "angie": "angela",
    "pam": "pamela",
    "nikki": "nicole",
    "sam": "samantha",
}
MAX_GROUPS_PER_BLOCK = 200


def canonical_name(full_name: str) -> tuple[str, str]:
    """(first name with nicknames resolved, last name), middle names and initials dropped."""
    words = [w.strip(".,").lower() for w in full_name.split() if w.strip(".,")]
    if not words:
        return "", ""
    first = words[0]
    return NICKNAMES.get(first, first), words[-1] if len(words) > 1 else ""


@dataclass
class ListingGroup:
    id: str
    first: str
    last: str
    listing_url: str
    phones: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    ages: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class MergeDecision:
    group_id: str
    merged_with_url: str  # the group's first listing (the caller blind-indexes it)
    score: float
    evidence: dict[str, float]


def similarity(group: ListingGroup, first: str, last: str, listing: PersonListing) -> tuple[float, dict[str, float]]:
    names = (fuzz.ratio(first, group.first) + fuzz.ratio(last, group.last)) / 200
    shared_contact = bool(group.phones & set(listing.phones) or group.emails & set(listing.emails))
    shared_address = bool(group.addresses & {a.lower() for a in listing.addresses})
    close_age = listing.age is not None and any(abs(listing.age - a) <= 1 for a in group.ages)
    evidence = 1.0 if shared_contact else 0.8 if shared_address else 0.3 if close_age else 0.0
    # conflicting ages are strong evidence of two different people (namesakes)
    if listing.age is not None and group.ages and not close_age:
        evidence = min(evidence, 0.2)
    score = round(0.5 * names + 0.5 * evidence, 4)
    return score, {
        "names": round(names, 3),
        "shared_contact": float(shared_contact),
        "shared_address": float(shared_address),
        "close_age": float(close_age),
    }


class FuzzyListingDedup:
    def __init__(self, threshold: float = 0.85):
        self.threshold = threshold
        self.blocks: dict[tuple[str, str], list[ListingGroup]] = {}

    def assign(self, listing: PersonListing) -> MergeDecision | None:
        """Put the listing in a group (sets ``listing.listing_group``); a decision when it joined one."""
        first, last = canonical_name(listing.full_name)
        block = self.blocks.setdefault((listing.scan_id, last[:1]), [])
        best, best_score, best_evidence = None, 0.0, {}
        for group in block:
            score, evidence = similarity(group, first, last, listing)
            if score > best_score:
                best, best_score, best_evidence = group, score, evidence
        if best is None or best_score < self.threshold:
            best = ListingGroup(str(uuid.uuid4()), first, last, listing.listing_url)
            if len(block) < MAX_GROUPS_PER_BLOCK:
                block.append(best)
            decision = None
        else:
            decision = MergeDecision(best.id, best.listing_url, best_score, best_evidence)
        best.phones |= set(listing.phones)
        best.emails |= set(listing.emails)
        best.addresses |= {a.lower() for a in listing.addresses}
        if listing.age is not None:
            best.ages.add(listing.age)
        listing.listing_group = best.id
        return decision
