"""Offline evaluation and calibration of the matcher on the sandbox population.

For a target person, each of the five simulated broker sites returns the candidates its
own search would (name or alias, one address in the city and state; the spa site's looser
filter included), formatted the way that site prints them (name order, middle initials,
capitals, decades, birth month and year). The matcher's decisions are then checked against
who each candidate really is. No HTTP: this is for tuning and for tests; ``bench/matching.py``
runs the real crawls.

    python -m tools.evaluate_matching [--seed S] [--targets N] [--threshold T] [--contact]
    python -m tools.evaluate_matching calibrate [--seed S] [--targets N]
"""

from __future__ import annotations

import argparse
import random
from collections import Counter, defaultdict
from dataclasses import dataclass

from crawler.items import PersonListing
from crawler.matching.scorer import Matcher, Target
from crawler.spider_args import PersonQuery

SITES = ("fastpeople", "truepeople", "spa", "radaris", "thatsthem")


def _city_state(address) -> str:
    return f"{address.city}, {address.state}"


def site_listing(site: str, person, population) -> PersonListing:
    """The candidate record a detail page of ``site`` yields for ``person``."""
    from sandbox.brokers import common  # the sandbox is only needed here

    relatives = [r for r in map(population.get, person.relatives) if r]
    middle = person.middle_name
    places = list(dict.fromkeys(_city_state(a) for a in person.addresses))
    phones = [p.formatted() for p in person.phones]
    values = {
        "site": site,
        "scan_id": "offline",
        "listing_url": f"{site}:{person.id}",
        "age": person.age,
        "aliases": list(person.aliases),
        "locations": places,
        "emails": list(person.emails),
    }
    if site == "fastpeople":
        values.update(
            full_name=common.full_name(person),
            phones=phones,
            addresses=[f"{a.street}, {a.city} {a.state} {a.zip}" for a in person.addresses],
            relatives=[f"{r.first_name} {r.last_name}" for r in relatives],
        )
    elif site == "truepeople":
        values.update(
            full_name=person.full_name,
            phones=phones,
            addresses=[f"{common.long_street(a.street)}, {a.city}, {a.state} {a.zip}" for a in person.addresses],
            relatives=[r.full_name for r in relatives],
        )
    elif site == "spa":
        values.update(
            full_name=common.full_name(person),
            phones=phones,
            addresses=[a.line() for a in person.addresses],
            relatives=[common.full_name(r) for r in relatives],
        )
    elif site == "radaris":
        name = f"{person.first_name}{' ' + middle[0] if middle else ''} {person.last_name}"
        values.update(
            full_name=name,
            phones=[common.dashed(p.number) for p in person.phones],
            addresses=[a.line() for a in person.addresses],
            relatives=[
                f"{r.first_name}{' ' + r.middle_name[0] if r.middle_name else ''} {r.last_name}" for r in relatives
            ],
        )
    else:  # thatsthem: "Smith, John M.", capitals, born month and year
        name = f"{person.last_name}, {person.first_name}{' ' + middle[0] + '.' if middle else ''}"
        values.update(
            full_name=name,
            phones=[common.dashed(p.number) for p in person.phones],
            birth_year=person.birth_year,
            birth_month=person.birth_month,
            locations=[p.upper() for p in places],
            addresses=[f"{a.street.upper()}, {a.city.upper()}, {a.state} {a.zip}" for a in person.addresses],
            relatives=[f"{r.first_name} {r.last_name}" for r in relatives],
        )
    return PersonListing(**values)


class Sites:
    """The five sites' listings and searches, without their servers."""

    def __init__(self, seed: int | None = None):
        from sandbox.brokers import fastpeople, radaris, spa, thatsthem, truepeople
        from sandbox.brokers.common import Listing
        from sandbox.population import DEFAULT_SEED, DEFAULT_SIZE

        options = {"seed": seed or DEFAULT_SEED, "people": DEFAULT_SIZE}
        modules = (fastpeople, truepeople, spa, radaris, thatsthem)
        self.listings = {m.SITE_ID: Listing(m.SITE_ID, options, m.SHARE) for m in modules}
        self.population = self.listings["fastpeople"].population

    def candidates(self, query: PersonQuery) -> dict[str, list]:
        found = {}
        for site, listing in self.listings.items():
            if site == "spa":  # its API tests city and state against any addresses independently
                people = self.population.search(query.first_name, query.last_name, query.state, query.city)
                found[site] = [p for p in people if listing.listed(p)]
            else:
                found[site] = listing.search(query.first_name, query.last_name, city=query.city, state=query.state)
        return found


def target_query(person, contact: bool = False) -> PersonQuery:
    """What a user gives: first and last name, current city and state, age (and e-mail and phone with ``contact``)."""
    current = person.current
    return PersonQuery(
        first_name=person.first_name,
        last_name=person.last_name,
        city=current.city,
        state=current.state,
        age=person.age,
        email=person.emails[0] if contact and person.emails else "",
        phone=f"+1{person.phones[0].number}" if contact and person.phones else "",
    )


@dataclass
class Outcome:
    true_positive: int = 0
    false_positive: int = 0
    false_negative: int = 0
    candidates: int = 0

    @property
    def precision(self) -> float:
        decided = self.true_positive + self.false_positive
        return self.true_positive / decided if decided else 1.0

    @property
    def recall(self) -> float:
        wanted = self.true_positive + self.false_negative
        return self.true_positive / wanted if wanted else 1.0


def pick_targets(population, seed: int, count: int) -> list:
    return random.Random(seed).sample(population.people, count)


def scored(sites: Sites, seed: int, count: int, contact: bool = False):
    """(person, candidate, listing, levels, confidence) for every candidate of every target."""
    import datetime as dt

    from sandbox.population import REFERENCE_DATE

    today = dt.date(REFERENCE_DATE.year, REFERENCE_DATE.month, 1)
    for person in pick_targets(sites.population, seed, count):
        query = target_query(person, contact)
        matcher = Matcher(Target.from_query(query), today=today)
        for site, people in sites.candidates(query).items():
            for candidate in people:
                listing = site_listing(site, candidate, sites.population)
                result = matcher.score(listing)
                yield person, candidate, matcher.levels(listing), result.confidence


def evaluate(seed: int, count: int, threshold: float, contact: bool = False, sites: Sites | None = None) -> Outcome:
    outcome = Outcome()
    for person, candidate, _, confidence in scored(sites or Sites(), seed, count, contact):
        outcome.candidates += 1
        same = candidate.id == person.id
        if confidence >= threshold:
            outcome.true_positive += same
            outcome.false_positive += not same
        else:
            outcome.false_negative += same
    return outcome


def calibrate(seed: int, count: int, contact: bool = False) -> dict[str, dict[str, tuple[float, float]]]:
    """Observed m and u of every field level (add-one smoothed) on the population of ``seed``."""
    counts: dict[str, dict[bool, Counter]] = defaultdict(lambda: {True: Counter(), False: Counter()})
    totals = Counter()
    # another population than the sandbox's default: weights are not fitted to the benchmark's people
    for person, candidate, levels, _ in scored(Sites(seed), seed, count, contact):
        same = candidate.id == person.id
        totals[same] += 1
        for name, level in levels.items():
            counts[name][same][level] += 1
    table = {}
    for name, by in counts.items():
        levels = set(by[True]) | set(by[False])
        table[name] = {
            level: (
                round((by[True][level] + 1) / (totals[True] + len(levels)), 4),
                round((by[False][level] + 1) / (totals[False] + len(levels)), 4),
            )
            for level in sorted(levels)
        }
    table["prior"] = {"matches": (totals[True], totals[True] / max(1, sum(totals.values())))}
    return table


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", choices=["evaluate", "calibrate"], default="evaluate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--contact", action="store_true", help="the query also gives an e-mail and a phone")
    args = parser.parse_args(argv)
    if args.command == "calibrate":
        for name, levels in calibrate(args.seed, args.targets, args.contact).items():
            print(name, levels)
        return
    outcome = evaluate(args.seed, args.targets, args.threshold, args.contact)
    print(
        f"candidates {outcome.candidates} tp {outcome.true_positive} fp {outcome.false_positive} "
        f"fn {outcome.false_negative}"
    )
    print(f"precision {outcome.precision:.4f} recall {outcome.recall:.4f}")


if __name__ == "__main__":
    main()
