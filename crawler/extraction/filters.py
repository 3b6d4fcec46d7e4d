"""Named value filters of site definitions (``filters: [strip, {split: ","}]``).

Each filter takes one value (usually text) and an optional argument, and returns
a value, a list of values (which multiplies them), or None (which drops it).
``join`` is the exception: it works on the whole list (see ``apply``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from crawler import normalize
from crawler.notation import NotationError, parse_pattern

MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}
SPACES = re.compile(r"\s+")
STATE_TAIL = re.compile(r"^(?P<city>.*?)[,\s]+(?P<state>[A-Za-z]{2})(?:[\s,]+\d{5}(?:-\d{4})?)?\s*$")


def collapse(value: Any, _arg=None) -> Any:
    return SPACES.sub(" ", value).strip() if isinstance(value, str) else value


def title_case(value: str, _arg=None) -> str:
    """The ``title`` filter: crawler.normalize.title_case (one definition for sites and stored addresses)."""
    return normalize.title_case(str(value))


def digits(value: Any, _arg=None) -> str | None:
    return "".join(ch for ch in str(value) if ch.isdigit()) or None


def to_int(value: Any, _arg=None) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    match = re.search(r"\d+", str(value))
    return int(match.group()) if match else None


def cfemail(value: Any, _arg=None) -> str | None:
    """Cloudflare e-mail obfuscation: hex bytes, the first one XORs the rest."""
    text = str(value).strip()
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return None
    if len(raw) < 2:
        return None
    try:
        return bytes(b ^ raw[0] for b in raw[1:]).decode("utf-8")
    except UnicodeDecodeError:
        return None


def split(value: Any, arg) -> list[str]:
    sep = parse_pattern(arg or ",")
    parts = sep.split(str(value)) if isinstance(sep, re.Pattern) else str(value).split(sep)
    return [p.strip() for p in parts]


def replace(value: Any, arg) -> str:
    old, new = arg
    pattern = parse_pattern(old)
    if isinstance(pattern, re.Pattern):
        return pattern.sub(new, str(value))
    return str(value).replace(old, new)


def regex(value: Any, arg) -> str | None:
    match = re.search(arg, str(value))
    if not match:
        return None
    return match.group(1) if match.groups() else match.group()


def remove(value: Any, arg) -> str:
    return re.sub(re.escape(arg), "", str(value), flags=re.IGNORECASE).strip()


def last_first(value: Any, _arg=None) -> str:
    """ "Smith, John M." -> "John M. Smith" (values without a comma are kept)."""
    last, comma, first = str(value).partition(",")
    return f"{first.strip()} {last.strip()}".strip() if comma else str(value)


def city_state(value: Any, _arg=None) -> str | None:
    """The "City, ST" of an address line ("Springfield IL 62701", "1 OAK ST, SPRINGFIELD, IL 62701")."""
    text = collapse(str(value))
    match = STATE_TAIL.match(text)
    if not match:
        return None
    city = match.group("city").split(",")[-1].strip()
    if not city:
        return None
    return f"{title_case(city)}, {match.group('state').upper()}"


def parse_age_text(value: Any, _arg=None) -> int | list[int] | None:
    """An exact age, or a decade ("in their 40s" -> [40, 49])."""
    text = str(value)
    if decade := re.search(r"(\d{2})'?s\b", text):
        low = int(decade.group(1))
        return [low, low + 9]
    return to_int(text)


def month(value: Any, _arg=None) -> int | None:
    text = str(value).strip().lower()
    if text.isdigit():
        number = int(text)
        return number if 1 <= number <= 12 else None
    for name, number in MONTHS.items():
        if len(text) >= 3 and name.startswith(text[:3]):
            return number
    return None


def boolean(value: Any, _arg=None) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("", "no", "false", "0")


def absolute(value: Any, arg) -> str:
    return urljoin(arg or "", str(value))


FILTERS: dict[str, Callable[[Any, Any], Any]] = {
    "strip": lambda v, _a=None: v.strip() if isinstance(v, str) else v,
    "collapse": collapse,
    "lower": lambda v, _a=None: str(v).lower(),
    "upper": lambda v, _a=None: str(v).upper(),
    "title": title_case,
    "digits": digits,
    "int": to_int,
    "cfemail": cfemail,
    "split": split,
    "join": None,  # on the whole list, in ``apply``
    "replace": replace,
    "re": regex,
    "remove": remove,
    "last_first": last_first,
    "city_state": city_state,
    "parse_age_text": parse_age_text,
    "month": month,
    "bool": boolean,
    "absolute": absolute,
}
NEEDS_ARGUMENT = {"split": False, "join": False, "replace": True, "re": True, "remove": True}


def parse_filter(spec) -> tuple[str, Any]:
    if isinstance(spec, str):
        return spec, None
    ((name, arg),) = spec.items()
    return name, arg


def check_filter(spec) -> str | None:
    """Why the filter spec is wrong, or None."""
    name, arg = parse_filter(spec)
    if name not in FILTERS:
        return f"unknown filter {name!r} (known: {', '.join(sorted(FILTERS))})"
    if NEEDS_ARGUMENT.get(name) and arg is None:
        return f"filter {name!r} needs an argument"
    if name == "replace" and not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
        return "filter 'replace' expects [OLD, NEW]"
    if name == "re":
        try:
            re.compile(arg)
        except re.error as exc:
            return f"invalid regex: {exc}"
    if name in ("split", "replace") and arg is not None:
        try:
            parse_pattern(arg[0] if name == "replace" else str(arg))
        except NotationError as exc:
            return str(exc)
    return None


def apply(values: list, filters: list, base_url: str = "") -> list:
    """Run the filters over every value; lists multiply, None and "" drop out."""
    for spec in filters:
        name, arg = parse_filter(spec)
        if name == "join":
            values = [(" " if arg is None else arg).join(str(v) for v in values)] if values else []
            continue
        function = FILTERS[name]
        if name == "absolute":
            arg = base_url
        out = []
        for value in values:
            result = function(value, arg)
            out.extend(result if isinstance(result, list) and name == "split" else [result])
        values = [v for v in out if v is not None and v != ""]
    return values
