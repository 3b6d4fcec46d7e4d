"""FastPeople's redesigns ``structural``, ``jsonld`` and ``partial`` (described in ``fastpeople``'s docstring).

Pure renderers over plain values (``Summary`` for a search result, ``Profile`` for a detail page) that
``fastpeople`` computes exactly as v1 writes them, so every layout carries v1's values in v1's text formats.
The page frame, the count heading's text, the pagination, "no results" and "not found" pages stay
``fastpeople``'s own.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from sandbox.brokers.common import ld_json
from sandbox.population import Address

LAYOUTS = ("structural", "jsonld", "partial")

# structural's result columns: (header, v1 card label); the name column comes first, the order is new
COLUMNS = [
    ("Age", "Age"),
    ("Phones", "Phone Numbers"),
    ("Lives at", "Current Address"),
    ("Lived in", "Past Addresses"),
    ("AKA", "AKA"),
    ("Full name", "Full Name"),
]
# Cloudflare rewrites e-mails in the markup whatever the design
CF_EMAIL = "<a href='/cdn-cgi/l/email-protection' class='__cf_email__' data-cfemail='{code}'>[email&#160;protected]</a>"
PARTIAL_CARD_LABELS = {"Phone Numbers": "Phones"}  # the one card label partial rewords


@dataclass(frozen=True)
class Summary:
    """One search result as v1's card shows it."""

    link: str
    name: str  # "John Smith", the card's heading
    place: str  # "Springfield, IL"
    facts: list[tuple[str, str]]  # v1's (label, value), empty values left out
    full_name: str
    age: int
    given_name: str
    family_name: str
    current: Address
    past: list[Address]
    aliases: list[str]
    phones: list[str]  # v1's format, "(217) 555-0123"


@dataclass(frozen=True)
class Profile:
    """One detail page's values as v1 writes them."""

    link: str
    full_name: str
    given_name: str
    family_name: str
    age: int
    since: str  # "April 2020": when the person moved to the current address
    addresses: list[Address]  # current first
    lines: list[tuple[str, str]]  # v1's two lines of each address: "1234 Oak Ave", "Springfield IL 62701"
    aliases: list[str]
    phones: list[tuple[str, str, str]]  # (v1's "(217) 555-0123", reverse lookup path, type)
    emails: list[tuple[str, str]]  # (address, Cloudflare's data-cfemail of it)
    relatives: list[tuple[str, str | None]]  # ("First Last", their detail path if listed)


def postal(address: Address, street: bool = True) -> dict:
    parts = {"streetAddress": address.street} if street else {}
    parts |= {"addressLocality": address.city, "addressRegion": address.state}
    if street:
        parts["postalCode"] = address.zip
    return {"@type": "PostalAddress", **parts}


# ---- result pages --------------------------------------------------------------------------------------


def results(layout: str, heading: str, shown: list[Summary], first: int, v1_head: str) -> tuple[str, str]:
    """(the results part of the body, the head) for one page; ``first`` is the position of its first result."""
    if layout == "structural":
        return structural_results(heading, shown), ""  # the new front end dropped the JSON-LD
    if layout == "jsonld":
        return jsonld_results(heading, shown, first)
    return partial_results(heading, shown), v1_head


def structural_results(heading: str, shown: list[Summary]) -> str:
    headers = "".join(f"<th>{label}</th>" for label in ["Name", *(header for header, _ in COLUMNS)])
    rows = []
    for summary in shown:
        facts = dict(summary.facts)
        cells = "".join(f"<td>{escape(facts.get(label, ''))}</td>" for _, label in COLUMNS)
        rows.append(
            f"<tr class='result-row'><td class='result-name'><a href='{summary.link}'>{escape(summary.name)}</a>"
            f"<div class='result-place'>{escape(summary.place)}</div></td>{cells}</tr>"
        )
    return (
        f"<h1 class='results-heading'>{escape(heading)}</h1>"
        f"<table class='results-table'><thead><tr>{headers}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def jsonld_results(heading: str, shown: list[Summary], first: int) -> tuple[str, str]:
    items = [
        {
            "@type": "ListItem",
            "position": first + i,
            "url": s.link,
            "item": {
                "@type": "Person",
                "name": s.full_name,
                "givenName": s.given_name,
                "familyName": s.family_name,
                "description": f"{s.age} years old",
                "address": [postal(s.current)] + [postal(a, street=False) for a in s.past],
                "alternateName": s.aliases,
                "telephone": s.phones,
            },
        }
        for i, s in enumerate(shown)
    ]
    head = ld_json({"@context": "https://schema.org", "@type": "ItemList", "itemListElement": items})
    links = "".join(f"<li><a href='{s.link}'>{escape(s.name)}</a></li>" for s in shown)
    return f"<h1>{escape(heading)}</h1><ul>{links}</ul>", head


def partial_results(heading: str, shown: list[Summary]) -> str:
    cards = []
    for s in shown:
        loose = "".join(
            f"<h3>{PARTIAL_CARD_LABELS.get(label, label)}:</h3> {escape(value)}<br>" for label, value in s.facts
        )
        cards.append(
            f"<div class='card' data-link='{s.link}'><h2 class='card-heading'><span class='card-name'>"
            f"{escape(s.name)}</span><br><span class='card-location'>{escape(s.place)}</span></h2>"
            f"<div class='card-facts'>{loose}</div>"
            f"<a class='btn btn-primary details-button' href='{s.link}'>View Free Details</a></div>"
        )
    return f"<h1 class='results-title'>{escape(heading)}</h1><div class='people-list'>{''.join(cards)}</div>"


# ---- detail pages --------------------------------------------------------------------------------------


def detail(layout: str, profile: Profile, v1_head: str) -> tuple[str, str]:
    """(body, head) of the detail page."""
    if layout == "structural":
        return structural_detail(profile), ""
    if layout == "jsonld":
        return jsonld_detail(profile)
    return partial_detail(profile), v1_head


def entries(profile: Profile) -> dict[str, list[str]]:
    """Each section's values as v1 marks them up (links, Cloudflare's e-mail markup), under v1's keys."""
    street, city_line = profile.lines[0]
    relatives = [
        f"<a href='{link}'>{escape(n)}</a>" if link else f"<span>{escape(n)}</span>" for n, link in profile.relatives
    ]
    return {
        "aliases": [escape(a) for a in profile.aliases],
        "current": [f"{escape(street)}<br>{escape(city_line)}"],
        "previous": [f"{escape(s)}<br>{escape(c)}" for s, c in profile.lines[1:]],
        "phones": [f"<a href='{path}'>{text}</a> <span>{kind}</span>" for text, path, kind in profile.phones],
        "emails": [CF_EMAIL.format(code=code) for _, code in profile.emails],
        "relatives": relatives,
    }


def structural_detail(profile: Profile) -> str:
    """A definition list, one <dd> per value, sections in a new order under reworded labels."""
    values = entries(profile)
    values["current"] = [values["current"][0] + f"<br><small class='moved-in'>Since {profile.since}</small>"]
    terms = [
        ("Age", [str(profile.age)]),
        ("Phones", values["phones"]),
        ("Emails", values["emails"]),
        ("Current address", values["current"]),
        ("Possible relatives", values["relatives"]),
        ("AKA", values["aliases"]),
        ("Past addresses", values["previous"]),
    ]
    items = "".join(f"<dt>{term}</dt>" + "".join(f"<dd>{v}</dd>" for v in vs) for term, vs in terms if vs)
    return f"<h1 class='profile-name'>{escape(profile.full_name)}</h1><dl class='profile-facts'>{items}</dl>"


def jsonld_detail(profile: Profile) -> tuple[str, str]:
    """An <h1>, one line, and the rest in a clean Person block (no FAQ block, no defects)."""
    current = profile.addresses[0]
    line = f"{profile.age} years old. Lives in {current.city}, {current.state} since {profile.since}."
    person = {
        "@context": "https://schema.org",
        "@type": "Person",
        "name": profile.full_name,
        "givenName": profile.given_name,
        "familyName": profile.family_name,
        "url": profile.link,
        "alternateName": profile.aliases,
        "telephone": [text for text, _, _ in profile.phones],
        "contactPoint": [
            {"@type": "ContactPoint", "telephone": text, "contactType": kind} for text, _, kind in profile.phones
        ],
        "email": [address for address, _ in profile.emails],
        "address": [postal(a) for a in profile.addresses],
        "relatedTo": [
            {"@type": "Person", "name": name, **({"url": link} if link else {})} for name, link in profile.relatives
        ],
    }
    return f"<h1>{escape(profile.full_name)}</h1><p>{escape(line)}</p>", ld_json(person)


# partial: v1's section key -> (its id now, heading); three ids kept, three renamed, one heading reworded
PARTIAL_SECTIONS = {
    "aliases": ("aka-section", "Aliases"),
    "current": ("current_address_section", "Current Address"),
    "previous": ("past-addresses", "Previous Addresses"),
    "phones": ("phone_number_section", "Phone Numbers"),
    "emails": ("email_section", "Email Addresses"),
    "relatives": ("relatives-section", "Relatives"),
}


def partial_detail(profile: Profile) -> str:
    """v1's page with half its ids and classes renamed and a wrapper around the sections."""
    values = entries(profile)
    values["current"] = [values["current"][0] + f"<p class='since'>Since {profile.since}</p>"]
    boxes = "".join(
        f"<div class='info-box' id='{box_id}'><h2>{heading}</h2><ul>{''.join(map('<li>{}</li>'.format, values[key]))}"
        "</ul></div>"
        for key, (box_id, heading) in PARTIAL_SECTIONS.items()
        if values[key]
    )
    return (
        f"<h1 class='fullname'>{escape(profile.full_name)}</h1><h2 class='detail-label'>Age:</h2> {profile.age}"
        f"<div class='detail-sections'>{boxes}</div>"
    )
