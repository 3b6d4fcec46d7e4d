"""``{field|filter}`` templates of search URLs, parameters, form fields and next pages."""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from crawler import normalize
from crawler.extraction.filters import digits

PLACEHOLDER = re.compile(r"\{([a-z_]+)((?:\|[a-z_]+)*)\}")


def _national(value: str) -> str:
    # the query's phone is E.164 already (spider arguments): no region to assume
    try:
        return normalize.phone_national(value)
    except ValueError:
        return digits(value) or ""


def _slug(value: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-")


TEMPLATE_FILTERS = {
    "slug": _slug,
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
    "plus": lambda v: v.replace(" ", "+"),
    "digits": _national,
    "dashed": lambda v: (lambda d: f"{d[:3]}-{d[3:6]}-{d[6:]}" if len(d) == 10 else d)(_national(v)),
    "paren": lambda v: (lambda d: f"({d[:3]}) {d[3:6]}-{d[6:]}" if len(d) == 10 else d)(_national(v)),
    "quote": lambda v: quote(v, safe="@"),
}


def query_values(query) -> dict[str, str]:
    """The template fields of a PersonQuery (empty strings for what it lacks)."""
    return {
        "first_name": query.first_name,
        "last_name": query.last_name,
        "middle_name": query.middle_name,
        "full_name": query.full_name,
        "city": query.city,
        "state": query.state,
        "age": str(query.age) if query.age else "",
        "email": query.email,
        "phone": query.phone,
    }


def fields_used(template: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(template)]


def render(template: str, values: dict, encode: bool = False) -> str:
    """Fill the placeholders; ``encode`` percent-encodes each substituted value (URL paths)."""

    def substitute(match: re.Match) -> str:
        name, filters = match.group(1), [f for f in match.group(2).split("|") if f]
        if name not in values:
            raise KeyError(f"unknown template field {name!r}")
        value = str(values[name] if values[name] is not None else "")
        for f in filters:
            if f not in TEMPLATE_FILTERS:
                raise KeyError(f"unknown template filter {f!r}")
            value = TEMPLATE_FILTERS[f](value) if value else value
        return quote(value, safe="@-_.~+") if encode and "quote" not in filters else value

    return PLACEHOLDER.sub(substitute, template)


def render_params(params: dict[str, str], values: dict) -> str:
    """A query string; a parameter whose fields are all empty is left out."""
    kept = {}
    for key, template in params.items():
        used = fields_used(template)
        if used and not any(values.get(name) for name in used):
            continue
        kept[key] = render(template, values).strip(" ,")
    return urlencode(kept)


def check_template(template: str, extra: tuple[str, ...] = ()) -> str | None:
    """Why the template is wrong, or None (used by the loader)."""
    from crawler.extraction.schema import QUERY_FIELDS

    for match in PLACEHOLDER.finditer(template):
        if match.group(1) not in QUERY_FIELDS + extra:
            return f"unknown template field {match.group(1)!r}"
        for f in (f for f in match.group(2).split("|") if f):
            if f not in TEMPLATE_FILTERS:
                return f"unknown template filter {f!r} (known: {', '.join(TEMPLATE_FILTERS)})"
    return None
