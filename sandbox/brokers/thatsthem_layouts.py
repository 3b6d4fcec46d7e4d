"""ThatsThem's redesigns beyond v2 (``structural``, ``jsonld``, ``partial``): pure renderers of the records of a
lookup page and of a record page, from the values ``thatsthem.py`` gathers (``Record``) in its v1 text formats.

Self-healing extraction is measured on them, so each carries exactly the v1 values, written as v1 writes them
("Smith, John M.", "1234 OAK AVE" / "SPRINGFIELD, IL 62701", "555-555-0123 Mobile", "Born October 1958 (67
years old)"); only the markup changes, as when a real broker ships a redesign (see ``thatsthem.py``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

SCHEMA = "https://schema.org"


@dataclass(frozen=True)
class Postal:
    """An address in USPS capitals, as v1 writes it on two lines."""

    street: str
    city: str
    state: str
    zip: str

    def lines(self) -> tuple[str, str]:
        return self.street, f"{self.city}, {self.state} {self.zip}"

    def html(self) -> str:
        return "<br>".join(map(escape, self.lines()))


@dataclass(frozen=True)
class Record:
    """One ThatsThem record as v1 shows it; ``relatives`` only on the record's own page."""

    url: str
    name: str  # "Smith, John M."
    born: str  # "October 1958 (67 years old)"
    address: Postal
    phones: list[tuple[str, str]]  # ("555-555-0123", "Mobile")
    emails: list[str]
    aliases: list[str]
    previous: list[Postal]
    relatives: list[str] | None = None  # "John Smith"


def phone_html(number: str, kind: str) -> str:
    return f"<a href='/phone/{number}'>{number}</a> <small>{kind}</small>"


def email_html(email: str) -> str:
    return f"<a href='/email/{quote(email, safe='@')}'>{escape(email)}</a>"


def ld_script(value: Any) -> str:
    """A JSON-LD block with "<" escaped, so no value (a name carrying markup) can close the script element."""
    text = json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")
    return f'<script type="application/ld+json">{text}</script>'


# ---- structural: records -> one table row each; the record page -> a definition list ------------------------


def structural_results(records: list[Record]) -> str:
    heads = ["Name", "Born", "Address", "Phone", "Email", "AKA", "Past addresses"]
    rows = "".join(
        f"<tr><td class='c-name'><a href='{r.url}'>{escape(r.name)}</a></td><td class='c-born'>{r.born}</td>"
        f"<td class='c-addr'>{r.address.html()}</td>"
        f"<td class='c-phone'>{'<br>'.join(phone_html(*p) for p in r.phones)}</td>"
        f"<td class='c-email'>{'<br>'.join(map(email_html, r.emails))}</td>"
        f"<td class='c-aka'>{escape(', '.join(r.aliases))}</td>"
        f"<td class='c-past'>{'<hr>'.join(a.html() for a in r.previous)}</td></tr>"
        for r in records
    )
    head = "".join(f"<th>{h}</th>" for h in heads)
    return f"<table class='people-list'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def structural_record(record: Record) -> str:
    groups = [
        ("Date of birth", [record.born]),
        ("AKA", [escape(", ".join(record.aliases))] if record.aliases else []),
        ("Phones", [phone_html(*p) for p in record.phones]),
        ("Current address", [record.address.html()]),
        ("Relatives", [escape(", ".join(record.relatives))] if record.relatives else []),
        ("Emails", list(map(email_html, record.emails))),
        ("Past addresses", [a.html() for a in record.previous]),
    ]
    facts = "".join(
        f"<dt>{label}</dt>" + "".join(f"<dd>{v}</dd>" for v in values) for label, values in groups if values
    )
    name = f"<p class='record-link'><a href='{record.url}'>{escape(record.name)}</a></p>"
    return f"<div class='record-sheet'>{name}<dl class='record-facts'>{facts}</dl></div>"


# ---- jsonld: the data in schema.org JSON-LD, minimal markup --------------------------------------------------


def postal_ld(address: Postal) -> dict:
    return {
        "@type": "PostalAddress",
        "streetAddress": address.street,
        "addressLocality": address.city,
        "addressRegion": address.state,
        "postalCode": address.zip,
    }


def person_ld(record: Record, **extra: Any) -> dict:
    values = {
        "alternateName": record.aliases,
        "telephone": [number for number, _kind in record.phones],
        "email": record.emails,
        "address": [postal_ld(a) for a in [record.address, *record.previous]],
        **extra,
    }
    return {"@type": "Person", "name": record.name, **{k: v for k, v in values.items() if v}}


def jsonld_results(records: list[Record], origin: str) -> str:
    elements = [
        {"@type": "ListItem", "position": n, "url": origin + r.url, "item": person_ld(r, description=f"Born {r.born}")}
        for n, r in enumerate(records, 1)
    ]
    links = "".join(f"<li><a href='{r.url}'>{escape(r.name)}</a></li>" for r in records)
    data = {"@context": SCHEMA, "@type": "ItemList", "itemListElement": elements}
    return f"<ul>{links}</ul>{ld_script(data)}"


def jsonld_record(record: Record) -> str:
    relatives = [{"@type": "Person", "name": name} for name in record.relatives or []]
    data = {"@context": SCHEMA, **person_ld(record, relatedTo=relatives)}
    return f"<p>Born {record.born}</p>{ld_script(data)}"


# ---- partial: v1 with some class names renamed, a wrapper here and there, one label reworded ----------------


def partial_record(record: Record) -> str:
    entries = [
        ("address", "Address", record.address.html()),
        ("phones", "Phones", "<br>".join(phone_html(*p) for p in record.phones)),
        ("email", "Email Addresses", "<br>".join(map(email_html, record.emails))),
        ("aka", "Also known as", ", ".join(map(escape, record.aliases))),
        ("past", "Previous Addresses", "<hr>".join(a.html() for a in record.previous)),
        ("relatives", "Possible relatives", ", ".join(map(escape, record.relatives or []))),
    ]
    parts = "".join(
        f"<div class='ThatsThem-record-{key}'><span class='field-label'>{label}:</span> {value}</div>"
        for key, label, value in entries
        if value
    )
    return (
        f"<div class='ThatsThem-record' data-record-url='{record.url}'><header class='ThatsThem-record-head'>"
        f"<h2 class='ThatsThem-record-title'><a href='{record.url}'>{escape(record.name)}</a></h2>"
        f"<div class='ThatsThem-record-age'>Born {record.born}</div></header>"
        f"<div class='ThatsThem-record-details'>{parts}</div></div>"
    )


def partial_results(records: list[Record]) -> str:
    cards = "".join(map(partial_record, records))
    return f"<section class='search-results'><div class='ThatsThem-results'>{cards}</div></section>"
