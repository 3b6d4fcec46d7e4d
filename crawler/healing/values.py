"""What a field's values look like: its kind, a validity test per kind, and a value signature.

A signature describes values without keeping them (kind, length range, character classes), so the
selector memory can tell "these nodes hold phone numbers" without holding a single phone number.
"""

from __future__ import annotations

import re
from typing import Any

from crawler import normalize

FIELD_KINDS = {
    "full_name": "name",
    "aliases": "name",
    "relatives": "name",
    "age": "age",
    "age_range": "age_range",
    "birth_year": "year",
    "birth_month": "month",
    "locations": "city_state",
    "addresses": "address",
    "phones": "phone",
    "emails": "email",
    "deceased": "bool",
    "url": "url",
}
# fields a heal may relocate: a default-valued flag (deceased) never reads as missing, so it cannot break
HEALABLE = tuple(f for f, kind in FIELD_KINDS.items() if kind != "bool")

# words of labels and page furniture: a run of them is not a name ("Phone Numbers", "View Details")
_LABEL_WORDS_TEXT = """
    a about address addresses age aged aka alias aliases also and associated associates at background born by
    call cell city contact current date details email emails e-mail e-mails family find free full home in
    info information is known landline last lives lived location locations mail more name names number
    numbers of old on or other past people person phone phones possible previous profile record records
    related relatives report reported residence residences resident see since state the their to view
    wireless with years you your page next results result search people's mobile primary
    as seen nickname nicknames alternate alternative spelling spellings maiden household member members
    neighbor neighbors associate birth dob date month year line type carrier
    telephone telephones cellphone cellphones relative spouse partner
"""
LABEL_WORDS = frozenset(_LABEL_WORDS_TEXT.split())
_NAME_WORD = re.compile(r"^[A-Z][A-Za-z'\-]*\.?$|^[A-Z]\.?$")
_CITY_STATE = re.compile(r"^[A-Za-z][A-Za-z .'\-]*, [A-Z]{2}$")
_ADDRESS = re.compile(r"^\d+[A-Za-z]?\s+\S.*[A-Za-z]")
_DIGITS = re.compile(r"\d")
# what a kind's value is inside a longer node text ("Age: 45", "45 years old")
EXTRACTORS = {
    "age": r"\b(\d{1,3})\b",
    "year": r"\b(1[89]\d\d|20\d\d)\b",
    "month": r"\b((?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?)\s+(?:\d{1,2},?\s+)?(?:1[89]|20)\d\d\b",
    "phone": r"((?:\+?1[\s.\-]?)?\(?\b\d{3}\)?[\s.\-]?\d{3}[\s.\-]\d{4})\b",
}
# filters that turn a node's text into the kind's value when the old spec's own filters do not
DEFAULT_FILTERS = {
    "age": ["int"],
    "year": ["int"],
    "month": ["month"],
    "age_range": ["parse_age_text"],
    "city_state": ["city_state"],
    "email": ["lower"],
}


# words that start a sentence about a place, never the place ("Lives in Dayton, OH")
_PLACE_LEADS = frozenset({"lives", "lived", "living", "in", "at", "from", "location", "address", "current", "resides"})


def _led_by_label(value: str) -> bool:
    """ "Lives in Dayton, OH" (a label before the place), "NE Houston, TX" (two places run together)."""
    city = value.rsplit(",", 1)[0].split()
    return city[0].lower() in _PLACE_LEADS or any(len(w) == 2 and w.isupper() for w in city)


def is_name(value: Any) -> bool:
    if not isinstance(value, str) or _DIGITS.search(value) or _CITY_STATE.match(value.strip()):
        return False  # "Dayton, OH" is a place, not a person
    words = value.replace(",", " ").split()
    if not 2 <= len(words) <= 6 or not all(_NAME_WORD.match(w) for w in words):
        return False
    return not all(w.lower().strip(".:") in LABEL_WORDS for w in words)


def _age(value: Any) -> bool:
    try:
        return 0 < int(value) <= 120
    except (TypeError, ValueError):
        return False


def _phone(value: Any) -> bool:
    if not isinstance(value, str) or len(re.sub(r"\D", "", value)) not in (10, 11):
        return False
    try:
        normalize.phone_e164(value, "US")
    except ValueError:
        return False
    return not re.search(r"[A-Za-z]{3,}", value)


def _email(value: Any) -> bool:
    # a teaser's masked address ("j***@example.org") is not the person's
    return isinstance(value, str) and "*" not in value and bool(normalize.EMAIL_RE.match(value.strip().lower()))


def _age_range(value: Any) -> bool:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return all(_age(v) for v in value)
    return _age(value)


VALID = {
    "name": is_name,
    "age": _age,
    "age_range": _age_range,
    "year": lambda v: _age(2026 - int(v)) if str(v).isdigit() else False,
    "month": lambda v: str(v).isdigit() and 1 <= int(v) <= 12,
    "city_state": lambda v: isinstance(v, str) and bool(_CITY_STATE.match(v)) and not _led_by_label(v),
    "address": lambda v: isinstance(v, str) and 8 <= len(v) <= 160 and bool(_ADDRESS.match(v)),
    "phone": _phone,
    "email": _email,
    "bool": lambda v: isinstance(v, bool),
    "url": lambda v: isinstance(v, str) and (v.startswith(("http://", "https://", "/")) or "/" in v),
}


def kind_of(field: str) -> str:
    return FIELD_KINDS.get(field.lstrip("_"), "text")


def valid(field: str, value: Any) -> bool:
    """Whether one (filtered) value looks like the field's kind; unknown kinds accept any non-empty value."""
    test = VALID.get(kind_of(field))
    return test(value) if test else value not in (None, "")


_QUICK = {"phone": lambda v: isinstance(v, str) and len(_NOT_DIGITS.sub("", v)) in (10, 11) and not _WORDS.search(v)}
_NOT_DIGITS, _WORDS = re.compile(r"\D"), re.compile(r"[A-Za-z]{3,}")


def looks_valid(field: str, value: Any) -> bool:
    """``valid`` without the costly parts (a phone's digits, not a full parse): what the crawl tests on
    every page to see a field drift to another kind."""
    test = _QUICK.get(kind_of(field)) or VALID.get(kind_of(field))
    return test(value) if test else value not in (None, "")


def share_valid(field: str, values: list) -> float:
    return sum(valid(field, v) for v in values) / len(values) if values else 0.0


def char_classes(value: str) -> list[str]:
    classes = []
    for name, pattern in (
        ("upper", "[A-Z]"),
        ("lower", "[a-z]"),
        ("digit", r"\d"),
        ("space", r"\s"),
        ("punct", r"[^\w\s]"),
    ):
        if re.search(pattern, value):
            classes.append(name)
    return classes


def signature(field: str, values: list) -> dict:
    """The shape of values without the values: kind, length range, character classes, share valid."""
    texts = [str(v) for v in values]
    return {
        "kind": kind_of(field),
        "length": [min(map(len, texts)), max(map(len, texts))] if texts else [0, 0],
        "classes": sorted({c for t in texts for c in char_classes(t)}),
        "valid": round(share_valid(field, values), 3),
        "count": [len(values), len(values)],
    }


def merge_signature(old: dict | None, new: dict) -> dict:
    """Two signatures of one field as one: the length and count ranges and the classes of both."""
    if not old or old.get("kind") != new.get("kind"):
        return new

    def span(key):
        a, b = old.get(key) or new.get(key), new.get(key) or old.get(key)
        return [min(a[0], b[0]), max(a[1], b[1])] if a and b else None

    return {
        "kind": new["kind"],
        "length": span("length"),
        "classes": sorted(set(old.get("classes", [])) | set(new.get("classes", []))),
        "valid": min(old.get("valid", 1.0), new.get("valid", 1.0)),
        "count": span("count"),
    }
