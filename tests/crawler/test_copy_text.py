import datetime as dt
import uuid

import pytest

from crawler.db.copy_text import render, render_rows


def test_values_render_as_copy_text():
    moment = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.UTC)
    assert render("a\tb\\c\nd\re") == "a\\tb\\\\c\\nd\\re"
    assert render(None) == "\\N" and render(True) == "t" and render(False) == "f"
    assert render(3) == "3" and render(0.25) == "0.25" and render(moment) == "2026-10-01T12:00:00+00:00"
    assert render(b"\x01\xff") == "\\\\x01ff"
    assert render(["a", 'b"c', None]) == '{"a","b\\\\"c",NULL}'
    assert render(uuid.UUID(int=1)) == "00000000-0000-0000-0000-000000000001"
    assert render_rows([("x", 1), ("y", None)]) == "x\t1\ny\t\\N\n"
    with pytest.raises(TypeError, match="cannot render dict"):
        render({})


def test_postgres_reads_back_what_was_rendered(db):
    db.execute("CREATE TEMP TABLE t (s text, b bytea, a text[], d timestamptz, n real)")
    row = (
        'tab\there\\ and "quotes"\nnewline',
        b"\x00\x01\xfe",
        ["x,y", 'q"', "back\\slash"],
        dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        0.5,
    )
    with db.cursor().copy("COPY t FROM STDIN") as copy:
        copy.write(render_rows([row]))
    assert db.execute("SELECT s, b, a, d, n FROM t").fetchone() == row


def test_plain_text_rows_are_joined_and_anything_else_rendered():
    rows = [
        ("evt_1", "click", "2026-10-01T12:00:00Z", '{"a":1}', "api"),
        ("evt_2", "click", "2026-10-01T12:00:00Z", '{"a":"x\\"y"}', "api"),  # a backslash: escaped
        ("evt_3", "tab\there", "line\nbreak", "cr\r", "\\N"),
        ("evt_4", None, 3, b"\x01", ["a"]),
    ]
    assert render_rows(rows) == "".join("\t".join(map(render, row)) + "\n" for row in rows)
    assert render_rows([]) == ""
