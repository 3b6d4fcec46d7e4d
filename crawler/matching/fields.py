"""Agreement levels of the non-name fields: age, places, phones, e-mails, relatives.

Each function returns one level word; the scorer turns levels into weights. "missing"
means the listing does not show the field, "not_given" that the target did not give it:
neither is evidence either way.
"""

from __future__ import annotations

import datetime as dt
import re

from crawler import normalize
from crawler.matching.names import fold, parse_name, related

# "Springfield IL 62701", "SPRINGFIELD, IL 62701", "..., Springfield, IL" at the end of an address
CITY_STATE_RE = re.compile(r"([A-Za-z][A-Za-z .'-]*?)\s*,?\s+([A-Za-z]{2})(?:\s+\d{5}(?:-\d{4})?)?\s*$")


def age_level(age: int | None, listing, today: dt.date, tolerance: int) -> str:
    """exact (within ``tolerance`` years: birthdays and the site's own date), range, disagree."""
    if age is None:
        return "not_given"
    if listing.age is not None:
        return "exact" if abs(listing.age - age) <= tolerance else "disagree"
    if listing.birth_year is not None:
        born = today.year - age  # or a year earlier, before the birthday
        return "exact" if born - 1 - tolerance <= listing.birth_year <= born + tolerance else "disagree"
    if listing.age_range is not None:
        low, high = listing.age_range
        return "range" if low - tolerance <= age <= high + tolerance else "disagree"
    return "missing"


def place_key(city: str, state: str) -> tuple[str, str]:
    return "".join(fold(city).replace("saint ", "st ").split()), state.strip().upper()


def split_place(text: str) -> tuple[str, str] | None:
    """("Springfield", "IL") from "Springfield, IL", "SPRINGFIELD, IL 62701" or a whole address line."""
    match = CITY_STATE_RE.search(text.strip())
    return (match.group(1), match.group(2)) if match else None


def listing_places(listing) -> list[tuple[str, str]]:
    """(city, state) keys, current first: the locations, else the addresses' last parts."""
    places = []
    for place in filter(None, map(split_place, listing.locations or listing.addresses)):
        if (key := place_key(*place)) not in places:
            places.append(key)
    return places


def place_level(city: str, state: str, listing) -> str:
    """current (the listing's first place), past (another of its places), state, disagree, missing."""
    if not state:
        return "not_given"
    places = listing_places(listing)
    if not places:
        return "missing"
    wanted = place_key(city, state)
    if city:
        if places[0] == wanted:
            return "current"
        if wanted in places:
            return "past"
    elif places[0][1] == wanted[1]:
        return "current_state"
    return "state" if any(s == wanted[1] for _, s in places) else "disagree"


def e164(value: str, region: str) -> str | None:
    try:
        return normalize.phone_e164(value, region)
    except ValueError:
        return None


def email_key(value: str) -> str | None:
    try:
        return normalize.email(value)
    except ValueError:
        return None


def phone_level(phone: str, listing, region: str) -> str:
    if not phone:
        return "not_given"
    seen = {e164(p, region) for p in listing.phones} - {None}
    if not seen:
        return "missing"
    return "agree" if e164(phone, region) in seen else "disagree"


def email_level(email: str, listing) -> str:
    if not email:
        return "not_given"
    seen = set(map(email_key, listing.emails)) - {None}
    if not seen:
        return "missing"
    return "agree" if email_key(email) in seen else "disagree"


def relatives_level(relatives: tuple[str, ...], listing) -> str:
    """agree when one of the target's relatives is among the listing's (nicknames allowed)."""
    if not relatives:
        return "not_given"
    if not listing.relatives:
        return "missing"
    wanted = [parse_name(r) for r in relatives]
    for seen in map(parse_name, listing.relatives):
        if any(w.valid and w.last == seen.last and related(w.first, seen.first) for w in wanted):
            return "agree"
    return "disagree"
