"""Rows rendered as PostgreSQL COPY text, in bulk.

psycopg's ``write_row`` adapts each value through its dumper machinery, about
5 microseconds for a typical event row; rendering the handful of types the
project writes directly and sending one block per batch is several times
cheaper, and COPY is the hot path of every bulk write. A row of plain text
values without a backslash, tab, newline or carriage return (an events row:
validation renders the timestamp as text) is one ``"\t".join``, with no call
per value.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

NULL = "\\N"


def escape(text: str) -> str:
    """COPY text escaping: backslash, tab, newline and carriage return."""
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if "\t" in text:
        text = text.replace("\t", "\\t")
    if "\n" in text:
        text = text.replace("\n", "\\n")
    if "\r" in text:
        text = text.replace("\r", "\\r")
    return text


def _array_element(value: Any) -> str:
    if value is None:
        return "NULL"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def render(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return escape(value)
    if value is None:
        return NULL
    if kind is dt.datetime or kind is dt.date:
        return value.isoformat()
    if kind is bool:
        return "t" if value else "f"
    if kind is int or kind is float or kind is uuid.UUID:
        return str(value)
    if kind is bytes or kind is bytearray or kind is memoryview:
        return "\\\\x" + bytes(value).hex()  # bytea hex format, backslash escaped for COPY
    if kind is list or kind is tuple:
        return escape("{" + ",".join(map(_array_element, value)) + "}")
    raise TypeError(f"cannot render {kind.__name__} for COPY")


def render_row(row: Sequence[Any]) -> str:
    """One row, without its newline."""
    try:
        line = "\t".join(row)  # every value text: nothing to render
    except TypeError:
        return "\t".join(map(render, row))
    if "\\" in line or "\n" in line or "\r" in line or line.count("\t") != len(row) - 1:
        return "\t".join(map(render, row))  # something to escape
    return line


def render_rows(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as one COPY text block (tab-separated, newline-terminated)."""
    lines = [render_row(row) for row in rows]
    return "\n".join(lines) + "\n" if lines else ""
