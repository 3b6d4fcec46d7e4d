"""Fuzzy dedup of person listings: the same person seen twice (across pages or
sites, with a nickname, a typo, another phone format) joins one listing group.

Blocking keeps it cheap: listings are compared only within their block (the
scan and the last name's first letter, which survives the typos and spelling
variants that break phonetic codes), and a block keeps a bounded number of groups.
Names are parsed and nicknames recognised as the matcher does
(``crawler.matching.names``); phones and e-mails arrive in the validate
pipeline's normal forms, so they compare as they are; two ages agree within
MATCH_AGE_TOLERANCE years. A candidate joins the best-scoring group at or
above the threshold; the decision and its evidence (scores only, no values)
are returned for the audit table. The state is per process and per scan: it
holds personal values, so it never goes to Redis.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from crawler.items import PersonListing
from crawler.matching.names import parse_name, related

MAX_GROUPS_PER_BLOCK = 200


def name_parts(full_name: str) -> tuple[str, str]:
    """(first, last), folded, as the matcher parses names: any site order, suffixes and titles off."""
    parsed = parse_name(full_name)
    return parsed.first, parsed.last


def first_name_similarity(a: str, b: str) -> float:
    """1.0 for nicknames of one name (Sam, Samuel), else how close the spelling is."""
    return 1.0 if a and b and related(a, b) else fuzz.ratio(a, b) / 100


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


def similarity(
    group: ListingGroup, first: str, last: str, listing: PersonListing, age_tolerance: int
) -> tuple[float, dict[str, float]]:
    names = (first_name_similarity(first, group.first) + fuzz.ratio(last, group.last) / 100) / 2
    shared_contact = bool(group.phones & set(listing.phones) or group.emails & set(listing.emails))
    shared_address = bool(group.addresses & {a.lower() for a in listing.addresses})
    close_age = listing.age is not None and any(abs(listing.age - a) <= age_tolerance for a in group.ages)
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
    def __init__(self, threshold: float, age_tolerance: int):
        """``age_tolerance``: MATCH_AGE_TOLERANCE, the years two ages of one person may differ by."""
        self.threshold = threshold
        self.age_tolerance = age_tolerance
        self.blocks: dict[tuple[str, str], list[ListingGroup]] = {}

    def assign(self, listing: PersonListing) -> MergeDecision | None:
        """Put the listing in a group (sets ``listing.listing_group``); a decision when it joined one."""
        first, last = name_parts(listing.full_name)
        block = self.blocks.setdefault((listing.scan_id, last[:1]), [])
        best, best_score, best_evidence = None, 0.0, {}
        for group in block:
            score, evidence = similarity(group, first, last, listing, self.age_tolerance)
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
