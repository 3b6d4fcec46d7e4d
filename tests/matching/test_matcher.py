"""The matcher against the synthetic population, with listings formatted the sites' ways."""

import dataclasses
import datetime as dt
import itertools

import orjson
import pytest

from crawler.items import PersonListing
from crawler.matching import Matcher, Target
from crawler.matching.names import compare_names, parse_name
from crawler.spider_args import PersonQuery
from sandbox.population import COLLIDING_NAMES, REFERENCE_DATE, default_population
from tools.evaluate_matching import SITES, Sites, evaluate, site_listing, target_query

TODAY = dt.date(REFERENCE_DATE.year, REFERENCE_DATE.month, 1)


def matcher(query: PersonQuery, threshold: float = 0.85) -> Matcher:
    return Matcher(Target.from_query(query), threshold, today=TODAY)


def listing(**values) -> PersonListing:
    base = {
        "site": "s",
        "scan_id": "x",
        "listing_url": "http://s/1",
        "full_name": "John Michael Doe",
        "age": 44,
        "locations": ["Springfield, IL", "Peoria, IL"],
    }
    return PersonListing(**{**base, **values})


QUERY = PersonQuery(first_name="John", last_name="Doe", city="Springfield", state="IL", age=44)


@pytest.mark.parametrize(
    "text, parts",
    [
        ("John Michael Smith", ("john", ("michael",), "smith")),
        ("Smith, John M.", ("john", ("m",), "smith")),
        ("SMITH, JOHN", ("john", (), "smith")),
        ("John M Smith Jr.", ("john", ("m",), "smith")),
        ("Dr. José de la Cruz", ("jose", ("de", "la"), "cruz")),
    ],
)
def test_names_are_parsed_in_every_site_order(text, parts):
    assert dataclasses.astuple(parse_name(text)) == parts


@pytest.mark.parametrize(
    "first, middle, shown, level, mid",
    [
        ("john", "", "J. Doe", "initial", "unknown"),
        ("john", "michael", "J. M. Doe", "initial", "agree"),
        ("john", "m", "John L Doe", "exact", "conflict"),
        ("william", "", "Bill Doe", "nickname", "unknown"),
        ("kathleen", "", "Kate Doe", "nickname", "unknown"),
        ("zachary", "", "Zachery Doe", "typo", "unknown"),
        ("john", "", "Joan Doe", "disagree", "unknown"),
        ("john", "", "John Dane", "disagree", "unknown"),
    ],
)
def test_name_levels(first, middle, shown, level, mid):
    result = compare_names(first, middle, "doe", shown, [])
    assert (result.level, result.middle) == (level, mid)


def test_conflicting_middle_initials_count_against():
    query = dataclasses.replace(QUERY, middle_name="Michael")
    agree, conflict = (matcher(query).score(listing(full_name=n)) for n in ("John M. Doe", "John L. Doe"))
    assert agree.confidence > 0.85 > conflict.confidence
    assert conflict.evidence["middle"]["level"] == "conflict" and conflict.evidence["middle"]["weight"] < 0


def test_age_as_exact_range_or_birth_year():
    m = matcher(QUERY)
    assert m.score(listing(age=45)).accepted  # within the tolerance
    assert not m.score(listing(age=52)).accepted
    assert m.score(listing(age=None, age_range=(40, 49))).evidence["age"]["level"] == "range"
    assert m.score(listing(age=None, age_range=(40, 49))).accepted
    assert not m.score(listing(age=None, age_range=(60, 69))).accepted
    assert m.score(listing(age=None, birth_year=TODAY.year - 44)).evidence["age"]["level"] == "exact"
    assert not m.score(listing(age=None, birth_year=TODAY.year - 30)).accepted


def test_places_current_first_past_and_elsewhere():
    m = matcher(QUERY)
    assert m.score(listing()).evidence["place"]["level"] == "current"
    assert m.score(listing(locations=["SPRINGFIELD, IL 62701"])).evidence["place"]["level"] == "current"
    moved_away = m.score(listing(locations=["Denver, CO", "Springfield, IL"]))
    assert moved_away.evidence["place"]["level"] == "past" and not moved_away.accepted
    assert m.score(listing(locations=["Springfield, MO"])).evidence["place"]["level"] == "disagree"
    from_addresses = listing(locations=[], addresses=["12 Oak Ave, Springfield, IL 62701"])
    assert m.score(from_addresses).evidence["place"]["level"] == "current"


def test_phone_and_email_decide_between_namesakes():
    query = dataclasses.replace(QUERY, phone="+12175550123", email="jd@example.com")
    m = matcher(query)
    same = m.score(listing(phones=["(217) 555-0123"], emails=["JD@example.com"]))
    other = m.score(listing(phones=["217-555-0199"], emails=["other@example.com"]))
    assert same.evidence["phone"]["level"] == "agree" and same.evidence["email"]["level"] == "agree"
    assert same.accepted and not other.accepted


def test_relatives_count_when_the_target_names_them():
    m = Matcher(dataclasses.replace(Target.from_query(QUERY), relatives=("William Doe",)), 0.85, today=TODAY)
    assert m.score(listing(relatives=["Bill Doe", "Ann Roe"])).evidence["relatives"]["level"] == "agree"
    assert m.score(listing(relatives=["Ann Roe"])).evidence["relatives"]["level"] == "disagree"
    assert matcher(QUERY).score(listing(relatives=["Ann Roe"])).evidence["relatives"]["level"] == "not_given"


def test_evidence_carries_no_personal_value():
    population = default_population()
    person = next(p for p in population.people if p.emails and p.relatives and p.middle_name)
    query = target_query(person, contact=True)
    for site in SITES:
        result = matcher(query).score(site_listing(site, person, population))
        assert result.accepted
        text = orjson.dumps(result.evidence).decode().casefold()
        values = [
            person.first_name,
            person.last_name,
            person.middle_name,
            person.current.city,
            *person.emails,
            person.phones[0].number[-4:],
            str(person.age),
        ]
        assert not [v for v in values if v.casefold() in text]


def test_colliding_namesakes_are_told_apart_on_every_site():
    """Every John Smith (and the other guaranteed namesakes) searched for by name, city, state and age:
    on each site's format, the person is accepted and namesakes are rejected unless they share the
    age and the current city (which nothing a user gives can tell apart)."""
    population = default_population()
    checked = 0
    for first, last, _ in COLLIDING_NAMES:
        group = [p for p in population.people if (p.first_name, p.last_name) == (first, last)]
        assert len(group) >= 4
        for target, other in itertools.product(group, group):
            m = matcher(target_query(target))
            twin = abs(other.age - target.age) <= 1 and other.current.city == target.current.city
            for site in SITES:
                result = m.score(site_listing(site, other, population))
                assert result.accepted == (other is target or twin), (site, result.evidence)
                checked += 1
    assert checked > 300


def test_offline_precision_and_recall_on_the_population():
    outcome = evaluate(seed=11, count=300, threshold=0.85, sites=Sites())
    assert outcome.candidates > 1000
    assert outcome.precision >= 0.98 and outcome.recall >= 0.95, outcome
