"""Radaris's redesigns beyond v2 (``structural``, ``jsonld``, ``partial``): pure renderers of one result page's
cards and one profile, from the values ``radaris.py`` gathers (``Card``, ``Profile``) and writes as v1 does.

Self-healing extraction is measured on them, so each carries exactly the v1 values in the v1 text formats;
only the markup changes, as when a real broker ships a redesign (see the layouts in ``radaris.py``).
The v1 item markup (``section_items``) lives here too: v1, v2 and ``partial`` share it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from typing import Any

from sandbox.population import Address

SCHEMA = "https://schema.org"
# v1's section headings, in v1 order (radaris.SECTIONS)
PHONES, EMAILS, ADDRESSES, RELATIVES, ASSOCIATES = (
    "Phone Numbers",
    "Email Addresses",
    "Address History",
    "Possible Relatives",
    "Possible Associates",
)
V1_SECTIONS = [PHONES, EMAILS, ADDRESSES, RELATIVES, ASSOCIATES]
# structural: a definition list, labels reworded and reordered
STRUCTURAL_LABELS = {ADDRESSES: "Addresses", RELATIVES: "Relatives", PHONES: "Phones", EMAILS: "Emails"}
STRUCTURAL_LABELS[ASSOCIATES] = "Associates"
# partial: about half of v1's class names renamed, one heading reworded
PARTIAL_CLASSES = {"email": "mail", "dates": "years"}
PARTIAL_HEADINGS = {RELATIVES: "Relatives"}


@dataclass(frozen=True)
class Link:
    """Another person as a profile names them: a link when the site lists them."""

    name: str
    url: str | None


@dataclass(frozen=True)
class Card:
    """What a v1 result card shows of one person."""

    url: str
    rid: str  # the site's id of the person (data-id)
    name: str
    age: int
    lives_in: str  # "City, ST"
    aliases: list[str]
    past: list[str]  # "City, ST", the current city left out


@dataclass(frozen=True)
class Profile:
    """What a v1 profile shows of one person."""

    name: str
    age: int
    where: str  # "City, ST"
    aliases: list[str]
    phones: list[tuple[str, str]]  # ("217-555-0123", "Wireless")
    emails: list[str]
    residences: list[tuple[Address, str]]  # (address, "2015 - present")
    relatives: list[Link]
    associates: list[Link]


def link_html(link: Link) -> str:
    name = escape(link.name)
    return f"<a href='{link.url}'>{name}</a>" if link.url else f"<span>{name}</span>"


def section_items(profile: Profile, classes: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Each v1 section's list items as HTML; ``classes`` renames v1 class names (partial)."""
    names = classes or {}

    def span(kind: str, text: str) -> str:
        return f"<span class='{names.get(kind, kind)}'>{text}</span>"

    return {
        PHONES: [f"{span('phone', number)} {span('phone-type', kind)}" for number, kind in profile.phones],
        EMAILS: [span("email", escape(e)) for e in profile.emails],
        ADDRESSES: [f"{span('address', escape(a.line()))} {span('dates', dates)}" for a, dates in profile.residences],
        RELATIVES: [link_html(r) for r in profile.relatives],
        ASSOCIATES: [link_html(a) for a in profile.associates],
    }


def ld_script(value: Any) -> str:
    """A JSON-LD block with "<" escaped, so no value can close the script element (as JSON encoders for HTML do)."""
    text = json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")
    return f'<script type="application/ld+json">{text}</script>'


# ---- structural: cards -> a table, sections -> a definition list ------------------------------------------


def structural_results(title: str, count: str, cards: list[Card]) -> str:
    head = "".join(f"<th scope='col'>{h}</th>" for h in ["Name", "Age", "Current city", "Previous cities", "AKA"])
    rows = "".join(
        f"<tr class='person-row'><td class='person-cell'><a href='{c.url}'>{escape(c.name)}</a></td>"
        f"<td class='person-cell num'>{c.age}</td><td class='person-cell'>{escape(c.lives_in)}</td>"
        f"<td class='person-cell'>{escape('; '.join(c.past))}</td>"
        f"<td class='person-cell'>{escape(', '.join(c.aliases))}</td></tr>"
        for c in cards
    )
    return (
        f"<div class='search-header'><h1 class='search-heading'>{escape(title)}</h1>"
        f"<span class='search-total'>{count}</span></div>"
        f"<table class='people-table'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    )


def structural_profile(profile: Profile) -> str:
    people = {RELATIVES: profile.relatives, ASSOCIATES: profile.associates}
    values = {
        ADDRESSES: [
            f"<span class='addr'>{escape(a.line())}</span> <small class='years'>{dates}</small>"
            for a, dates in profile.residences
        ],
        RELATIVES: [link_html(r) for r in people[RELATIVES]],
        "AKA": [escape(", ".join(profile.aliases))] if profile.aliases else [],
        PHONES: [f"{number} <small class='line-type'>{kind}</small>" for number, kind in profile.phones],
        EMAILS: [escape(e) for e in profile.emails],
        ASSOCIATES: [link_html(a) for a in people[ASSOCIATES]],
    }
    facts = f"<dt>Age:</dt><dd>{profile.age}</dd><dt>Location</dt><dd>{escape(profile.where)}</dd>"
    for key, items in values.items():  # empty groups are left out, as the redesigned site does
        if items:
            facts += f"<dt>{STRUCTURAL_LABELS.get(key, key)}</dt>" + "".join(f"<dd>{i}</dd>" for i in items)
    return (
        f"<div class='person-page'><h1 class='person-title'>{escape(profile.name)}</h1>"
        f"<dl class='person-details'>{facts}</dl></div>"
    )


# ---- jsonld: the data in schema.org JSON-LD, minimal markup --------------------------------------------------


def place(city_state: str) -> dict:
    city, state = city_state.rsplit(", ", 1)
    return {"@type": "PostalAddress", "addressLocality": city, "addressRegion": state}


def postal(address: Address) -> dict:
    return {
        "@type": "PostalAddress",
        "streetAddress": address.street,
        "addressLocality": address.city,
        "addressRegion": address.state,
        "postalCode": address.zip,
    }


def person_ld(name: str, **values: Any) -> dict:
    """A schema.org Person; empty values are left out, as generators do."""
    return {"@type": "Person", "name": name, **{k: v for k, v in values.items() if v}}


def others_ld(links: list[Link], origin: str) -> list[dict]:
    return [person_ld(o.name, url=origin + o.url if o.url else None) for o in links]


def jsonld_results(title: str, count: str, cards: list[Card], origin: str) -> str:
    elements = [
        {
            "@type": "ListItem",
            "position": position,
            "url": origin + c.url,
            "item": person_ld(
                c.name,
                description=f"{c.age} years old",
                alternateName=c.aliases,
                address=[place(c.lives_in), *map(place, c.past)],
            ),
        }
        for position, c in enumerate(cards, 1)
    ]
    items = "".join(f"<li><a href='{c.url}'>{escape(c.name)}</a></li>" for c in cards)
    data = {"@context": SCHEMA, "@type": "ItemList", "name": title, "itemListElement": elements}
    return f"<h1>{escape(title)}</h1><p>{count}</p><ul>{items}</ul>{ld_script(data)}"


def jsonld_profile(profile: Profile, origin: str) -> str:
    data = {
        "@context": SCHEMA,
        **person_ld(
            profile.name,
            alternateName=profile.aliases,
            telephone=[number for number, _kind in profile.phones],
            email=profile.emails,
            address=[postal(a) for a, _dates in profile.residences],
            relatedTo=others_ld(profile.relatives, origin),
            knows=others_ld(profile.associates, origin),
        ),
    }
    line = f"<p>{profile.age} years old &middot; {escape(profile.where)}</p>"
    return f"<h1>{escape(profile.name)}</h1>{line}{ld_script(data)}"


# ---- partial: v1 with some class names renamed, wrappers added, one label reworded --------------------------


def partial_results(title: str, count: str, cards: list[Card]) -> str:
    def card(c: Card) -> str:
        rows = [("Age", str(c.age)), ("Lives in", c.lives_in)]
        if c.aliases:
            rows.append(("Also known as", ", ".join(c.aliases)))
        if c.past:
            rows.append(("Previously lived in", "; ".join(c.past)))
        info = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
        return (
            f"<div class='result teaser-card' data-id='{c.rid}'><div class='card-title'>"
            f"<a href='{c.url}'>{escape(c.name)}</a>, <span class='card-age'>{c.age}</span>"
            f"</div><div class='card-body'><dl class='card-facts'>{info}</dl></div></div>"
        )

    return (
        f"<h1 class='search-title'>{escape(title)}</h1><p class='results-count'>{count}</p>"
        f"<section class='results-list'><div class='results'>{''.join(map(card, cards))}</div></section>"
    )


def partial_profile(profile: Profile) -> str:
    items = section_items(profile, PARTIAL_CLASSES)
    aka = escape(", ".join(profile.aliases))
    body = f"<div class='profile'><header class='profile-header'><h1 class='profile-name'>{escape(profile.name)}</h1>"
    body += (
        f"<div class='person-age'>Age {profile.age}</div><div class='profile-location'>{escape(profile.where)}</div>"
    )
    body += f"<dl class='aka'><dt>Also known as</dt><dd>{aka}</dd></dl>" if aka else ""
    body += "</header>"
    for label in V1_SECTIONS:
        lis = "".join(f"<li>{i}</li>" for i in items[label]) or "<li class='none'>None found</li>"
        heading = f"<h2 class='section-title'>{PARTIAL_HEADINGS.get(label, label)}</h2>"
        body += (
            f"<div class='section'>{heading}<div class='section-body'><ul class='section-list'>{lis}</ul></div></div>"
        )
    return body + "</div>"
