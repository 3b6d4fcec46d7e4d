"""Small notations shared by settings and site definitions, parsed in one place.

- ``/regex/`` or ``/regex/i`` versus a plain substring (site definitions' markers, ``split``/``replace``
  filters, block signatures): ``parse_pattern`` and ``pattern_in``.
- A mapping given as a dict, JSON object text or ``key=value,key=value`` text (``RATELIMIT_SITES``,
  ``SITES_BASE_URLS``, values that come from the environment): ``parse_mapping``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any


class NotationError(ValueError):
    """``str(error)`` says what was wrong with the value, without repeating the value itself."""


def parse_pattern(text: str) -> str | re.Pattern:
    """``/.../`` or ``/.../i`` (case-insensitive) is a compiled regex; anything else stays a literal substring.

    Raises NotationError for an invalid regex between the slashes.
    """
    if not isinstance(text, str):
        raise NotationError(f"expected a string, got {type(text).__name__}")
    if len(text) > 2 and text.startswith("/") and text.rstrip("i").endswith("/"):
        body = text.rstrip("i")
        if len(body) > 2:
            flags = re.IGNORECASE if text.endswith("i") else 0
            try:
                return re.compile(body[1:-1], flags)
            except re.error as exc:
                raise NotationError(f"invalid regex: {exc}") from None
    return text


def pattern_in(pattern: str | re.Pattern, text: str) -> bool:
    """A ``parse_pattern`` result occurs in ``text``."""
    return pattern in text if isinstance(pattern, str) else pattern.search(text) is not None


def parse_mapping(value: Any, convert: Callable[[Any], Any] = str) -> dict:
    """A dict, JSON object text (``{"a": 1}``) or ``a=1,b=2`` text as ``{key: convert(value)}``.

    Empty or None gives ``{}``. Raises NotationError naming the bad item (an item without ``=``,
    an empty key, invalid JSON, or a value ``convert`` rejects).
    """
    if value is None or value == "" or value == {}:
        return {}
    if isinstance(value, dict):
        items = list(value.items())
    else:
        text = str(value).strip()
        if not text:
            return {}
        if text.startswith("{"):
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError as exc:
                raise NotationError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            items = list(parsed.items())  # text starting with "{" decodes to an object or fails
        else:
            items = []
            for position, item in enumerate((i.strip() for i in text.split(",")), start=1):
                if not item:
                    continue
                if "=" not in item:
                    raise NotationError(f"item {position}: expected key=value")
                key, _, raw = item.partition("=")
                items.append((key, raw))
    mapping = {}
    for raw_key, raw in items:
        key = str(raw_key).strip()
        if not key:
            raise NotationError("empty key")
        try:
            mapping[key] = convert(raw.strip() if isinstance(raw, str) else raw)
        except (TypeError, ValueError) as exc:
            raise NotationError(f"{key}: {exc}") from None
    return mapping
