"""Lenient JSON-LD parsing and ``a.b.*.c`` paths into parsed JSON (keys case-insensitive)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from typing import Any

_decoder = json.JSONDecoder(strict=False)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def parse_lenient(text: str) -> Any:
    """One JSON value from text that real pages get slightly wrong: a trailing ``};`` or ``;``,
    HTML comments around it, trailing commas, control characters in strings."""
    text = text.strip()
    for prefix, suffix in (("<!--", "-->"), ("/*<![CDATA[*/", "/*]]>*/")):
        if text.startswith(prefix) and text.endswith(suffix):
            text = text[len(prefix) : -len(suffix)].strip()
    for candidate in (text, _TRAILING_COMMA.sub(r"\1", text)):
        try:
            value, _end = _decoder.raw_decode(candidate)  # ignores whatever follows the value (";")
            return value
        except ValueError:
            continue
    return None


def cached_on(response, name: str, compute: Callable[[], Any]) -> Any:
    """``compute()`` once per response: kept as an attribute of it (a response class with
    ``__slots__`` does without the cache)."""
    cached = getattr(response, name, None)
    if cached is None:
        cached = compute()
        with contextlib.suppress(AttributeError):
            setattr(response, name, cached)
    return cached


def jsonld_blocks(response) -> list[dict]:
    """Every JSON-LD object of the page (lists and ``@graph`` expanded), cached on the response."""
    return cached_on(response, "_jsonld_blocks", lambda: _jsonld_objects(response))


def _jsonld_objects(response) -> list[dict]:
    objects: list[dict] = []

    def add(value):
        if isinstance(value, list):
            for v in value:
                add(v)
        elif isinstance(value, dict):
            graph = _get(value, "@graph")
            if isinstance(graph, list):
                add(graph)
            else:
                objects.append(value)

    for text in response.xpath('//script[@type="application/ld+json"]/text()').getall():
        add(parse_lenient(text))
    return objects


def _get(obj: dict, key: str) -> Any:
    if key in obj:
        return obj[key]
    folded = key.casefold()
    for k, v in obj.items():
        if isinstance(k, str) and k.casefold() == folded:
            return v
    return None


def types_of(obj: dict) -> set[str]:
    value = _get(obj, "@type")
    values = value if isinstance(value, list) else [value]
    return {str(v).casefold() for v in values if v}


def resolve(value: Any, path: str) -> list:
    """Every value at the dotted path; ``*`` walks all list elements; a list at the end is flattened."""
    current = [value]
    for segment in [s for s in path.split(".") if s] if path else []:
        following = []
        for node in current:
            if segment == "*":
                if isinstance(node, list):
                    following.extend(node)
                elif isinstance(node, dict):
                    following.extend(node.values())
            elif isinstance(node, dict):
                found = _get(node, segment)
                if found is not None:
                    following.append(found)
            elif isinstance(node, list):
                if segment.lstrip("-").isdigit() and -len(node) <= int(segment) < len(node):
                    following.append(node[int(segment)])
                else:  # a key applied to a list: to each element (JSON-LD values may be lists or not)
                    following.extend(
                        _get(n, segment) for n in node if isinstance(n, dict) and _get(n, segment) is not None
                    )
        current = following
    out = []
    for node in current:
        if isinstance(node, list):
            out.extend(node)
        elif node is not None:
            out.append(node)
    return out


def parse_json_body(response) -> Any:
    """The JSON body (reusing what the retry middleware already parsed)."""
    parsed = response.meta.get("parsed_json") if hasattr(response, "meta") and _has_request(response) else None
    if parsed is not None:
        return parsed
    return cached_on(response, "_json_body", lambda: parse_lenient(response.text))


def _has_request(response) -> bool:
    try:
        response.meta  # noqa: B018 -- raises without a request
    except AttributeError:
        return False
    return True
