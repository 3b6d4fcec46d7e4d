"""Only the exact canonical UTC shape goes to COPY untouched: any other ISO form is rendered anew
or refused, so one odd timestamp is one dead letter, never a failed COPY batch."""

import pytest

from crawler.normalize import timestamp
from pipelines.validate import _canonical_utc, event_time

pytestmark = pytest.mark.integration

ODD = [
    "2024-W01-1T00:00:00Z",  # ISO week date: fromisoformat reads it, PostgreSQL does not
    "2024-W01-1T00:00:00+00:00",
    "2024-W52-7T23:59:59.123456Z",
    "2024-001T00:00:00Z",  # ordinal date
    "2024-001T00:00:00.000Z",
    "2024-366T12:00:00+00:00",
    "\uff12\uff10\uff12\uff14-01-01T00:00:00Z",  # fullwidth digits
    "2024-01-01T00:00:0\u0660Z",  # an Arabic-Indic zero
    "\u0662\u0660\u0662\u0664-\u0660\u0661-\u0660\u0661T\u0660\u0660:\u0660\u0660:\u0660\u0660Z",
    "2024-01-01T00:00:00.1234Z",  # four fraction digits
    "2024-01-01T00:00:00,123Z",  # comma fraction
    "2024-01-01 00:00:00Z",  # space separator
    "20240101T000000Z",
    "2024-01-01T00:00:00Z\n",
]
CANONICAL = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:00.123Z", "2024-01-01T00:00:00.123456+00:00"]


@pytest.mark.parametrize("value", ODD)
def test_only_the_exact_shape_takes_the_fast_path(value):
    assert not _canonical_utc(value)


@pytest.mark.parametrize("value", CANONICAL)
def test_the_canonical_shape_is_sent_as_it_came(value):
    assert event_time(value) == value


def test_week_dates_are_rendered_anew():
    assert event_time("2024-W01-1T00:00:00Z") == "2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize("value", ODD + CANONICAL)
def test_postgres_reads_every_rendered_form_or_it_is_refused_as_the_general_parser_does(db, value):
    try:
        expected = timestamp(value)
    except ValueError as general:
        with pytest.raises(ValueError) as fast:
            event_time(value)
        assert str(fast.value) == str(general)  # a dead letter, with the general parser's words
        return
    text = event_time(value)
    assert db.execute("SELECT %s::text::timestamptz", (text,)).fetchone()[0] == expected
