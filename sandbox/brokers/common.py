"""What the simulated broker sites share: who is listed, ids, search, formats (run-time state: ``control.py``).

- Who a site lists: real brokers each hold a different, incomplete copy of the public record, so a
  hash of the site id and the person decides, and every site lists its own stable ~70-85 % of the
  population (its ``SHARE``). The person's name and birth year are mixed in (``person_key``), so other
  seeds differ; ``listing_url(person)`` (the matching benchmark's ground truth) needs no server state.
- Ids: profile URLs carry ids derived the same way (``opaque_id``), never the population's own
  ``P000123`` ids, which would let a crawler guess them.
- Search: the name or an alias, case-insensitive, as ``Population.search``; but a place filter
  (city, state, ZIP area) must hold for ONE address, current or past. ``Population.search`` tests
  city and state against any addresses independently, so "Springfield, MO" would wrongly find a
  person who once lived in Springfield IL and later in Kansas City MO.
- Formats: helpers each site combines its own way (name order, phone style, street words).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections import defaultdict
from html import escape
from typing import Any

from aiohttp import web

from sandbox.population import DEFAULT_SEED, DEFAULT_SIZE, REFERENCE_DATE, Address, Person, default_population

ALPHANUMERIC = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
STREET_WORDS = {
    "St": "Street",
    "Ave": "Avenue",
    "Dr": "Drive",
    "Ln": "Lane",
    "Rd": "Road",
    "Pl": "Place",
    "Blvd": "Boulevard",
}


# ---- determinism -------------------------------------------------------------------------------------


def digest(*parts: object, size: int = 8) -> int:
    """A stable number of ``size`` bytes from the parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:size], "big")


def person_key(person: Person) -> str:
    """The person's identity across seeds: the id alone repeats for every seed."""
    return f"{person.id}|{person.first_name}|{person.last_name}|{person.birth_year}"


def is_listed(site_id: str, person: Person, share: float) -> bool:
    """Whether the site lists the person: the same answer on every run, a different draw for every site."""
    return digest(site_id, "listed", person_key(person)) < share * 2**64


def base_n(number: int, alphabet: str, length: int | None = None) -> str:
    """The number in the alphabet, least significant digit first; ``length`` digits, or as many as it takes."""
    chars: list[str] = []
    while number if length is None else len(chars) < length:
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def opaque_id(site_id: str, person: Person, length: int = 11, alphabet: str = ALPHANUMERIC) -> str:
    """A profile id of the site's own; 16 bytes of hash, so even 11 alphanumerics are all unpredictable."""
    return base_n(digest(site_id, "id", person_key(person), size=16), alphabet, length)


def stable_order(site_id: str, key: str, people: list[Person]) -> list[Person]:
    """A deterministic shuffle (for picks such as associates) that needs no random state."""
    return sorted(people, key=lambda p: digest(site_id, "order", key, p.id))


def since_month(site_id: str, person: Person, address: Address) -> tuple[int, int]:
    """(month, year) a site claims the person moved in: the population only knows the year."""
    month = digest(site_id, "since", person.id, address.street) % 12 + 1
    if address.since >= REFERENCE_DATE.year:
        month = min(month, REFERENCE_DATE.month)
    return month, address.since


def reported_month(site_id: str, person: Person, key: str) -> tuple[int, int]:
    """(month, year) between the current address's move-in year and the reference date."""
    first = person.current.since * 12
    last = REFERENCE_DATE.year * 12 + REFERENCE_DATE.month - 1
    index = first + digest(site_id, "reported", person.id, key) % max(1, last - first + 1)
    return index % 12 + 1, index // 12


# ---- formats -----------------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Letters and digits only, case-folded: "St. Louis" == "st-louis"."""
    return "".join(re.findall(r"[a-z0-9]+", text.casefold()))


def name_key(text: str) -> str:
    return " ".join(re.split(r"[\s+\-_]+", text.casefold().strip()))


def slug(text: str) -> str:
    return "-".join(re.findall(r"[a-z0-9]+", text.casefold()))


def full_name(person: Person) -> str:
    """First, whole middle name and last name ("John Michael Smith")."""
    return " ".join(filter(None, [person.first_name, person.middle_name, person.last_name]))


def long_street(street: str) -> str:
    """Spell the street word out: 1234 Oak Ave -> 1234 Oak Avenue."""
    return " ".join(STREET_WORDS.get(word, word) for word in street.split())


def dashed(number: str) -> str:
    return f"{number[:3]}-{number[3:6]}-{number[6:]}"


def decade(age: int) -> str:
    return f"in their {age // 10 * 10}s"


def month_year(month: int, year: int, short: bool = False) -> str:
    return f"{MONTHS[month - 1][:3] if short else MONTHS[month - 1]} {year}"


def parse_name(text: str) -> tuple[str, str] | None:
    """(first, last) from "john-smith", "John Smith" or "John+Smith"; None without both."""
    parts = name_key(text).split()
    return (parts[0], " ".join(parts[1:])) if len(parts) >= 2 else None


def parse_place(tokens: list[str]) -> tuple[str | None, str | None, str | None]:
    """(city, state, zip) from tokens such as ["kansas", "city", "mo", "64101"], ["IL"] or ["62701"]."""
    tokens = [t for t in tokens if t]
    zip_code = tokens.pop() if tokens and re.fullmatch(r"\d{5}", tokens[-1]) else None
    state = tokens.pop().upper() if tokens and re.fullmatch(r"[A-Za-z]{2}", tokens[-1]) else None
    return " ".join(tokens) or None, state, zip_code


def cf_encode(email: str, key: int) -> str:
    """Cloudflare's e-mail obfuscation: the key byte, then every byte XOR the key, in hex."""
    return f"{key:02x}" + "".join(f"{b ^ key:02x}" for b in email.encode())


def cf_decode(encoded: str) -> str:
    key = int(encoded[:2], 16)
    return bytes(int(encoded[i : i + 2], 16) ^ key for i in range(2, len(encoded), 2)).decode()


def ld_json(value: Any, tail: str = "") -> str:
    """A JSON-LD script block; ``tail`` lets a site reproduce broken blocks (``";"`` after the object)."""
    return f"<script type='application/ld+json'>{json.dumps(value, ensure_ascii=False)}{tail}</script>"


def hashed(name: str) -> str:
    """A CSS-modules-like class name for layout v2 ("card" -> "sc-1a2b3c")."""
    return f"sc-{digest('class', name) % 16**6:06x}"


def html_page(
    brand: str, title: str, body: str, *, head: str = "", status: int = 200, headers: dict | None = None
) -> web.Response:
    html = (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(title)}</title>{head}</head>"
        f"<body><header class='site-header'><a href='/'>{escape(brand)}</a></header><main>{body}</main>"
        f"<footer>&copy; {REFERENCE_DATE.year} {escape(brand)}</footer></body></html>"
    )
    return web.Response(text=html, status=status, headers=headers, content_type="text/html")


# ---- who is listed -----------------------------------------------------------------------------------


class Listing:
    """One broker's listed people with name/phone/e-mail indexes, and its search over them."""

    def __init__(self, site_id: str, options: dict, share: float):
        self.id = site_id
        self.population = default_population(options.get("seed", DEFAULT_SEED), options.get("people", DEFAULT_SIZE))
        self.people = [p for p in self.population.people if is_listed(site_id, p, share)]
        self.ids = {p.id for p in self.people}
        self.by_name: dict[str, list[Person]] = defaultdict(list)
        self.by_phone: dict[str, list[Person]] = defaultdict(list)
        self.by_email: dict[str, list[Person]] = defaultdict(list)
        for person in self.people:
            for key in dict.fromkeys(name_key(n) for n in [f"{person.first_name} {person.last_name}", *person.aliases]):
                self.by_name[key].append(person)
            for phone in dict.fromkeys(p.number for p in person.phones):
                self.by_phone[phone].append(person)
            for email in person.emails:
                self.by_email[email.casefold()].append(person)

    def listed(self, person: Person | None) -> bool:
        return person is not None and person.id in self.ids

    def search(
        self, first: str, last: str, city: str | None = None, state: str | None = None, zip_code: str | None = None
    ) -> list[Person]:
        """Listed people named (or also known as) first last, with one address in the place, if given."""
        found = self.by_name.get(name_key(f"{first} {last}"), [])
        if not (city or state or zip_code):
            return list(found)

        def there(a: Address) -> bool:
            return (
                (not city or fold(a.city) == fold(city))
                and (not state or a.state == state.upper())
                and (not zip_code or a.zip[:3] == zip_code[:3])
            )

        return [p for p in found if any(map(there, p.addresses))]


# ---- form sessions ---------------------------------------------------------------------------------

MAX_SESSIONS = 10_000  # the oldest is forgotten beyond this, as sessions expire on the real sites


def form_session(sessions: dict[str, str], cookie: str) -> tuple[str, str, bool]:
    """(session id, its CSRF token, whether it is new: set the cookie) for a page with a form; the
    session is the one of the ``cookie`` value when the site knows it."""
    fresh = cookie not in sessions
    if fresh:
        if len(sessions) >= MAX_SESSIONS:
            del sessions[next(iter(sessions))]
        cookie = secrets.token_urlsafe(18)
        sessions[cookie] = secrets.token_hex(20)
    return cookie, sessions[cookie], fresh
