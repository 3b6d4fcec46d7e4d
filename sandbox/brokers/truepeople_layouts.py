"""TruePeople's redesigns ``structural``, ``jsonld`` and ``partial`` (described in ``truepeople``'s docstring).

Pure renderers over plain values (``Summary`` for a search result, ``Profile`` for a detail page) that
``truepeople`` computes exactly as v1 writes them, so every layout carries v1's values in v1's text formats.
The page frame, the count's text, the Next Page button, the defences and the 404 stay ``truepeople``'s own.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from sandbox.brokers.common import ld_json

LAYOUTS = ("structural", "jsonld", "partial")

# structural's result columns after the name: (header, v1 summary key), in a new order
COLUMNS = [("Age", "age"), ("Location", "lives"), ("Possible relatives", "related"), ("Previously", "used")]
PARTIAL_CARD_LABELS = {"Used to live in": "Past cities"}  # the one card label partial rewords


@dataclass(frozen=True)
class Summary:
    """One search result as v1's card shows it."""

    link: str
    name: str  # "John M. Smith"
    deceased: bool
    facts: list[tuple[str, str, str]]  # v1's (key, label, value): age, lives, used, related; values may be empty
    cities: list[tuple[str, str]]  # (city, state): the current one, then past ones as "Used to live in" lists them
    relatives: list[str]  # "Mary K. Smith"


@dataclass(frozen=True)
class Address:
    street: str  # spelled out, as v1 writes it: "1234 Oak Avenue"
    city: str
    state: str
    zip: str
    since: int  # the year v1 shows as "(2015)"

    def city_line(self) -> str:
        return f"{self.city}, {self.state} {self.zip}"


@dataclass(frozen=True)
class Phone:
    text: str  # "(217) 555-0123"
    lookup: str  # the reverse lookup URL v1 links
    type: str
    primary: bool
    reported: str  # "Mar 2024"
    carrier: str


@dataclass(frozen=True)
class Profile:
    """One detail page's values as v1 writes them."""

    link: str
    full_name: str  # "John M. Smith"
    given_name: str
    additional_name: str
    family_name: str
    age: int
    deceased: bool
    aliases: list[str]
    addresses: list[Address]  # current first
    phones: list[Phone]
    emails: list[str]
    relatives: list[tuple[str, str | None]]  # ("Mary K. Smith", their detail path if listed)


def summary_place(city: str, state: str) -> dict:
    return {"@type": "PostalAddress", "addressLocality": city, "addressRegion": state}


# ---- result pages --------------------------------------------------------------------------------------


def results(layout: str, count: str, shown: list[Summary], first: int) -> tuple[str, str]:
    """(the count and results part of the body, the head); ``first`` is the position of the page's first result."""
    if layout == "structural":
        return structural_results(count, shown), ""
    if layout == "jsonld":
        return jsonld_results(count, shown, first)
    return partial_results(count, shown), ""


def structural_results(count: str, shown: list[Summary]) -> str:
    headers = "".join(f"<th>{header}</th>" for header in ["Name", *(h for h, _ in COLUMNS)])
    rows = []
    for s in shown:
        facts = {key: value for key, _, value in s.facts}
        badge = " <span class='status-badge'>Deceased</span>" if s.deceased else ""
        cells = "".join(f"<td>{escape(facts[key])}</td>" for _, key in COLUMNS)
        rows.append(f"<tr class='person-row'><td><a href='{s.link}'>{escape(s.name)}</a>{badge}</td>{cells}</tr>")
    table = f"<table class='people-table'><thead><tr>{headers}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    return f"<p class='results-summary'>{escape(count)}</p>{table if shown else ''}"


def jsonld_results(count: str, shown: list[Summary], first: int) -> tuple[str, str]:
    items = []
    for i, s in enumerate(shown):
        person = {
            "@type": "Person",
            "name": s.name,
            "description": next(value for key, _, value in s.facts if key == "age"),  # "in their 40s"
            "address": [summary_place(city, state) for city, state in s.cities],
            "relatedTo": [{"@type": "Person", "name": name} for name in s.relatives],
        }
        items.append({"@type": "ListItem", "position": first + i, "url": s.link, "item": person})
    head = ld_json({"@context": "https://schema.org", "@type": "ItemList", "itemListElement": items}) if items else ""
    links = "".join(
        f"<li><a href='{s.link}'>{escape(s.name)}</a>{' (Deceased)' if s.deceased else ''}</li>" for s in shown
    )
    return f"<h1>{escape(count)}</h1>" + (f"<ul>{links}</ul>" if shown else ""), head


def partial_results(count: str, shown: list[Summary]) -> str:
    cards = []
    for s in shown:
        badge = "<span class='deceased'>Deceased</span>" if s.deceased else ""
        facts = "".join(
            f"<div><span class='fact-label'>{PARTIAL_CARD_LABELS.get(label, label)} </span>"
            f"<span class='content-value'>{escape(value)}</span></div>"
            for _, label, value in s.facts
            if value
        )
        cards.append(
            f"<div class='card card-summary result-card' data-detail-link='{s.link}'>"
            f"<div class='card-name'>{escape(s.name)}</div>{badge}<div class='card-facts'>{facts}</div>"
            f"<a class='btn btn-success view-button' href='{s.link}'>View Details</a></div>"
        )
    return f"<div class='record-count'>{escape(count)}</div><div class='results-list'>{''.join(cards)}</div>"


# ---- detail pages --------------------------------------------------------------------------------------


def address_html(address: Address, tag: str = "div", attributes: str = "") -> str:
    return (
        f"<{tag}{attributes}>{escape(address.street)}<br>{escape(address.city_line())}"
        f"<div class='smaller'>({address.since})</div></{tag}>"
    )


def phone_html(phone: Phone) -> str:
    """One phone with v1's details, without v1's microdata."""
    primary = " <span class='badge'>Primary</span>" if phone.primary else ""
    return (
        f"<div class='phone-line'><a href='{phone.lookup}'>{phone.text}</a> - <span>{phone.type}</span>{primary}"
        f"<div class='smaller'>Last reported {phone.reported}</div><div class='smaller'>{escape(phone.carrier)}</div>"
        "</div>"
    )


def relative_html(name: str, link: str | None) -> str:
    return f"<a href='{link}'>{escape(name)}</a>" if link else f"<b>{escape(name)}</b>"


def detail(layout: str, profile: Profile) -> tuple[str, str]:
    """(body, head) of the detail page."""
    if layout == "structural":
        return structural_detail(profile), ""
    if layout == "jsonld":
        return jsonld_detail(profile)
    return partial_detail(profile), ""


def structural_detail(profile: Profile) -> str:
    """A table of label/value rows, in a new order under reworded labels."""
    current, *previous = profile.addresses
    rows = [
        ("Age:", str(profile.age)),
        ("Phones", "".join(map(phone_html, profile.phones))),
        ("Current address", address_html(current)),
        ("Emails", "".join(f"<div>{escape(e)}</div>" for e in profile.emails)),
        ("Relatives", "".join(f"<div>{relative_html(*r)}</div>" for r in profile.relatives)),
        ("AKA", "".join(f"<div>{escape(a)}</div>" for a in profile.aliases)),
        ("Past addresses", "".join(map(address_html, previous))),
    ]
    body = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in rows if value)
    badge = "<span class='status-badge'>Deceased</span>" if profile.deceased else ""
    return (
        f"<div class='profile-card'><h1 class='profile-title'>{escape(profile.full_name)}</h1>{badge}"
        f"<table class='profile-table'><tbody>{body}</tbody></table></div>"
    )


def jsonld_detail(profile: Profile) -> tuple[str, str]:
    """An <h1>, a line or two, and the rest in a Person block."""
    phones = []
    for phone in profile.phones:
        notes = ["Primary"] if phone.primary else []
        notes += [f"Last reported {phone.reported}", phone.carrier]
        phones.append(
            {
                "@type": "ContactPoint",
                "telephone": phone.text,
                "contactType": phone.type,
                "description": ", ".join(notes),
            }
        )
    person = {
        "@context": "https://schema.org",
        "@type": "Person",
        "name": profile.full_name,
        "givenName": profile.given_name,
        **({"additionalName": profile.additional_name} if profile.additional_name else {}),
        "familyName": profile.family_name,
        "url": profile.link,
        "alternateName": profile.aliases,
        "telephone": [phone.text for phone in profile.phones],
        "contactPoint": phones,
        "email": profile.emails,
        "address": [
            {
                "@type": "PostalAddress",
                "streetAddress": a.street,
                "addressLocality": a.city,
                "addressRegion": a.state,
                "postalCode": a.zip,
            }
            for a in profile.addresses
        ],
        "relatedTo": [
            {"@type": "Person", "name": name, **({"url": link} if link else {})} for name, link in profile.relatives
        ],
    }
    lines = f"<p>Age {profile.age}</p>" + ("<p>Deceased</p>" if profile.deceased else "")
    return f"<h1>{escape(profile.full_name)}</h1>{lines}", ld_json(person)


# partial: v1's section key -> (class now, heading); three keep v1's "section", three are renamed
PARTIAL_SECTIONS = {
    "aliases": ("panel", "Also Known As"),
    "current": ("section", "Current Address"),
    "phones": ("section", "Phone Numbers"),
    "emails": ("panel", "Email Addresses"),
    "previous": ("section", "Previous Addresses"),
    "relatives": ("panel", "Possible Relatives"),
}


def partial_detail(profile: Profile) -> str:
    """v1's page: #personDetails and its data attributes kept, the heading and half the sections renamed."""
    current, *previous = profile.addresses
    more = " data-link-to-more='address'"
    phones = []
    for phone in profile.phones:
        primary = "<span class='phone-primary'>Primary</span> " if phone.primary else ""
        phones.append(
            f"<div class='phone-item'><a data-link-to-more='phone' href='{phone.lookup}'>"
            f"<span itemprop='telephone'>{phone.text}</span></a> - <span class='phone-kind'>{phone.type}</span> "
            f"{primary}<div class='smaller'>Last reported {phone.reported}</div>"
            f"<div class='smaller carrier'>{escape(phone.carrier)}</div></div>"
        )
    relatives = [
        f"<a data-link-to-more='relative' href='{link}'>{escape(name)}</a>" if link else f"<b>{escape(name)}</b>"
        for name, link in profile.relatives
    ]
    content = {
        "aliases": "".join(f"<div>{escape(a)}</div>" for a in profile.aliases),
        "current": address_html(current, attributes=more),
        "phones": "".join(phones),
        "emails": "".join(f"<div>{escape(e)}</div>" for e in profile.emails),
        "previous": "".join(address_html(a, attributes=more) for a in previous),
        "relatives": "".join(relatives),
    }
    blocks = "".join(
        f"<div class='{kind} {key}'><h2>{heading}</h2>{content[key]}</div>"
        for key, (kind, heading) in PARTIAL_SECTIONS.items()
        if content[key]
    )
    current_city = profile.addresses[0]
    attributes = {
        "fn": profile.given_name,
        "mn": profile.additional_name,
        "ln": profile.family_name,
        "age": profile.age,
        "city": current_city.city,
        "state": current_city.state,
        "deceased": str(profile.deceased).lower(),
    }
    data = " ".join(f"data-{k}='{escape(str(v))}'" for k, v in attributes.items())
    deceased = "<span class='deceased'>Deceased</span>" if profile.deceased else ""
    return (
        f"<div id='personDetails' {data}><h1 class='person-name'>{escape(profile.full_name)}</h1>{deceased}"
        f"<span class='age'>Age {profile.age}</span><div class='person-sections'>{blocks}</div></div>"
    )
