"""Canonical forms of the values the pipelines store and compare.

The one place phones and e-mails are normalised: the validate pipeline (whose
forms dedup and storage then see), spider arguments, matching and search
templates all go through these functions.

Each function returns the normalised value or raises ValueError with a reason
that never contains the value itself (it may be personal data).
"""

from __future__ import annotations

import datetime as dt
import re

import phonenumbers

UTC = dt.UTC
EMAIL_RE = re.compile(r"^[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# Above these magnitudes an epoch number is in milliseconds / microseconds, not seconds
# (1e11 s is the year 5138; 1e14 ms is the year 5138 too).
EPOCH_MS_THRESHOLD = 1e11
EPOCH_US_THRESHOLD = 1e14
ADDRESS_ABBREVIATIONS = {
    "street": "St",
    "st": "St",
    "avenue": "Ave",
    "ave": "Ave",
    "road": "Rd",
    "rd": "Rd",
    "drive": "Dr",
    "dr": "Dr",
    "lane": "Ln",
    "ln": "Ln",
    "boulevard": "Blvd",
    "blvd": "Blvd",
    "place": "Pl",
    "pl": "Pl",
    "court": "Ct",
    "ct": "Ct",
    "apartment": "Apt",
    "apt": "Apt",
    "suite": "Ste",
    "ste": "Ste",
    "north": "N",
    "south": "S",
    "east": "E",
    "west": "W",
}


def _phone(value: str, region: str | None) -> phonenumbers.PhoneNumber:
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("not a possible phone number")
    return number


def phone_e164(value: str, region: str) -> str:
    """E.164 ("+12175550123"); ``region`` (the VALIDATE_PHONE_REGION setting) is assumed for
    numbers written without a country code."""
    return phonenumbers.format_number(_phone(value, region), phonenumbers.PhoneNumberFormat.E164)


def phone_national(value: str, region: str | None = None) -> str:
    """The national number's digits ("2175550123" from "+1 217-555-0123"), as search forms take
    it. Without ``region`` the value must carry its country code (an E.164 query phone does)."""
    return str(_phone(value, region).national_number)


def email(value: str) -> str:
    normalised = value.strip().lower()
    if len(normalised) > 254 or not EMAIL_RE.match(normalised):
        raise ValueError("not a valid e-mail address (syntax or domain form)")
    return normalised


ROMAN = frozenset({"ii", "iii", "iv", "vi", "vii", "viii"})


def _title_part(part: str) -> str:
    """One hyphen-free piece of a word: Mc/Mac prefixes, O'Brien, John's."""
    if not part:
        return part
    if part != part.lower() and part != part.upper():
        return part  # already mixed case (McAllen, d'Alene, DeKalb): written by someone who knew
    low = part.lower()
    if low in ROMAN:
        return low.upper()
    head, apostrophe, tail = low.partition("'")
    if apostrophe:
        # O'Brien, D'Angelo; a one-letter tail is a possessive or a contraction: John's
        tail = tail if len(tail) <= 1 else _title_part(tail)
        return _title_part(head) + apostrophe + tail
    if low.startswith("mc") and len(low) > 2 and low[2].isalpha():
        return "Mc" + low[2:].capitalize()
    # MacDonald, MacLeod; but Mack, Macy, Machado, Macias, Maccabe keep a plain "Mac" (no list can be
    # complete: a site that writes names in mixed case keeps its own spelling above)
    if low.startswith("mac") and len(low) > 5 and low[3] not in "aeiouchk":
        return "Mac" + low[3:].capitalize()
    return low.capitalize()


def title_case(value: str) -> str:
    """Names and places in title case: McAllen, MacDonald, O'Brien, Smith-Jones, John Smith III.

    Words already in mixed case are kept as written (``Coeur d'Alene``); two-letter capitals (a state
    code, ``IL``) stay capitals.
    """

    return " ".join(title_word(w) for w in value.split(" "))


def title_word(w: str) -> str:
    if len(w) == 2 and w.isalpha() and w.isupper():
        return w  # a state code
    return "-".join(_title_part(part) for part in w.split("-"))


# US state codes (and DC): spider arguments and addresses
US_STATES = frozenset(
    (
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
    )
)
# "Springfield IL 62701" at the end of an address: the same place as "Springfield, IL 62701"
_CITY_STATE_ZIP = re.compile(r"(?<=[A-Za-z.])\s+([A-Za-z]{2})\s+(\d{5}(?:-\d{4})?)$")


def address(value: str) -> str:
    """Single spaces, title case, standard street abbreviations, upper-case state codes, a comma between
    the city and the state (sites write both "Springfield IL 62701" and "Springfield, IL 62701")."""
    if not any(ch.isalnum() for ch in value):
        raise ValueError("empty address")
    value = " ".join(value.split())
    match = _CITY_STATE_ZIP.search(value)
    if match and match.group(1).upper() in US_STATES and "," in value[: match.start()]:
        value = f"{value[: match.start()]}, {match.group(1)} {match.group(2)}"
    words = re.sub(r"\s*,\s*", ", ", value).strip(" ,").split(" ")
    out = []
    for word in words:
        bare, comma = word.rstrip(","), "," if word.endswith(",") else ""
        key = bare.lower().rstrip(".")
        if key in ADDRESS_ABBREVIATIONS:
            bare = ADDRESS_ABBREVIATIONS[key]
        elif len(bare) == 2 and bare.isalpha() and comma == "" and out and out[-1].endswith(","):
            bare = bare.upper()  # "Springfield, il 62701" -> state code
        elif not any(ch.isdigit() for ch in bare):
            bare = title_word(bare)
        out.append(bare + comma)
    return " ".join(out)


def timestamp(value) -> dt.datetime:
    """A UTC datetime from ISO-8601 (with or without zone; naive means UTC),
    epoch seconds, epoch milliseconds or epoch microseconds (number or digit string)."""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").replace(".", "", 1).isdigit():
            value = float(text)
        else:
            try:
                parsed = dt.datetime.fromisoformat(text)
            except ValueError:
                raise ValueError("not an ISO-8601 timestamp or epoch number") from None
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"unsupported timestamp type {type(value).__name__}")
    magnitude = abs(value)
    if magnitude >= EPOCH_US_THRESHOLD:
        value /= 1_000_000
    elif magnitude >= EPOCH_MS_THRESHOLD:
        value /= 1000
    try:
        return dt.datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError("epoch timestamp out of range") from None
