"""Fellegi-Sunter scoring of one candidate listing against the scan's target.

Each field's agreement level has two probabilities: m = P(level | the listing is the
target) and u = P(level | it is someone else the site's search also returned). The level
adds log2(m / u) bits of evidence; the sum plus the prior log-odds gives the posterior
probability that the listing is the target, the ``confidence`` in [0, 1]. A level the
listing does not show, or the target did not give, adds nothing.

The m and u values below were estimated on the sandbox population (seed 1, not the
benchmark's) from candidates as the five broker sites return them for a search by
name, city and state (``python -m tools.evaluate_matching calibrate``), rounded and floored so
that no single field decides alone. The evidence of a decision names levels and
weights only, never a personal value.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from crawler.matching import fields
from crawler.matching.names import compare_names, fold
from crawler.spider_args import PersonQuery

# field -> level -> (m, u)
PROBABILITIES: dict[str, dict[str, tuple[float, float]]] = {
    "name": {
        "exact": (0.95, 0.60),
        "nickname": (0.02, 0.05),
        "typo": (0.01, 0.05),
        "initial": (0.01, 0.05),
        "alias": (0.01, 0.25),
        "disagree": (0.001, 0.05),
    },
    "middle": {"agree": (0.95, 0.20), "conflict": (0.02, 0.80)},
    "age": {"exact": (0.97, 0.04), "range": (0.95, 0.15), "disagree": (0.03, 0.96)},
    "place": {
        "current": (0.90, 0.50),
        "past": (0.06, 0.46),
        "current_state": (0.90, 0.50),
        "state": (0.04, 0.50),
        "disagree": (0.02, 0.90),
    },
    "phone": {"agree": (0.95, 0.01), "disagree": (0.05, 0.99)},
    "email": {"agree": (0.88, 0.002), "disagree": (0.12, 0.80)},
    "relatives": {"agree": (0.70, 0.05), "disagree": (0.30, 0.95)},
}
# prior odds that a returned candidate is the target (sites return a few namesakes per search)
PRIOR_PROBABILITY = 0.5


def weight(field_name: str, level: str) -> float:
    m, u = PROBABILITIES[field_name].get(level, (1.0, 1.0))  # unlisted levels (missing...) weigh nothing
    return math.log2(m / u)


@dataclass(frozen=True)
class Target:
    """Who the scan looks for, folded for comparison (personal data: memory only)."""

    first: str
    middle: str
    last: str
    city: str = ""
    state: str = ""
    age: int | None = None
    email: str = ""
    phone: str = ""
    relatives: tuple[str, ...] = ()

    @classmethod
    def from_query(cls, query: PersonQuery, relatives: tuple[str, ...] = ()) -> Target:
        return cls(
            first=fold(query.first_name).replace(" ", ""),
            middle=fold(query.middle_name).split(" ")[0],
            last=fold(query.last_name),
            city=query.city,
            state=query.state,
            age=query.age,
            email=query.email,
            phone=query.phone,
            relatives=relatives,
        )


@dataclass(frozen=True)
class MatchResult:
    confidence: float
    accepted: bool
    # per field: {"level": ..., "weight": bits}; levels and numbers only, no personal values
    evidence: dict[str, dict] = field(default_factory=dict)


class Matcher:
    """Scores listings against one target; ``threshold`` on the confidence decides."""

    def __init__(
        self,
        target: Target,
        threshold: float = 0.5,
        age_tolerance: int = 1,
        phone_region: str = "US",
        today: dt.date | None = None,
    ):
        self.target = target
        self.threshold = threshold
        self.age_tolerance = age_tolerance
        self.phone_region = phone_region
        self.today = today or dt.date.today()
        self.prior = math.log2(PRIOR_PROBABILITY / (1 - PRIOR_PROBABILITY))

    def levels(self, listing) -> dict[str, str]:
        t = self.target
        names = compare_names(t.first, t.middle, t.last, listing.full_name, list(listing.aliases))
        return {
            "name": "alias" if names.alias and names.level != "disagree" else names.level,
            "middle": names.middle,
            "age": fields.age_level(t.age, listing, self.today, self.age_tolerance),
            "place": fields.place_level(t.city, t.state, listing),
            "phone": fields.phone_level(t.phone, listing, self.phone_region),
            "email": fields.email_level(t.email, listing),
            "relatives": fields.relatives_level(t.relatives, listing),
        }

    def score(self, listing) -> MatchResult:
        evidence = {}
        total = self.prior
        for name, level in self.levels(listing).items():
            bits = weight(name, level)
            total += bits
            evidence[name] = {"level": level, "weight": round(bits, 2)}
        confidence = 1 / (1 + 2 ** -max(-60.0, min(60.0, total)))
        evidence["total"] = {"weight": round(total, 2)}
        return MatchResult(round(confidence, 4), confidence >= self.threshold, evidence)
