"""Event batches through validate -> dedup (Bloom) -> postgres, with checkpoints."""

import datetime as dt
import uuid

import pytest

from crawler.db.writer import Checkpoint
from crawler.items import EventBatch

T = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.UTC)


def page(source, ids, **fields):
    formats = [
        lambda t: t.isoformat().replace("+00:00", "Z"),
        lambda t: int(t.timestamp() * 1000),
        lambda t: int(t.timestamp()),
    ]
    return [
        {"eventId": i, "type": "click", "ts": formats[n % 3](T + dt.timedelta(seconds=n)), "userId": "u1", **fields}
        for n, i in enumerate(ids)
    ]


async def test_mixed_timestamps_and_detected_fields_are_stored_once(make_chain, db):
    source = f"api-{uuid.uuid4().hex[:6]}"
    events = page(source, [f"{source}-{n}" for n in range(9)])
    async with make_chain(redis=True) as chain:
        await chain.push(EventBatch(source, events, checkpoint=Checkpoint(source, "p0", "c1", T, rows=9)))
        await chain.push(EventBatch(source, events[3:] + page(source, [f"{source}-9"])))  # a repeated page
    stored = db.execute(
        "SELECT id, occurred_at, payload FROM events WHERE source = %s ORDER BY id", (source,)
    ).fetchall()
    assert len(stored) == 10
    assert {row[1] for row in stored[:9]} == {T + dt.timedelta(seconds=n) for n in range(9)}
    assert stored[0][2]["userId"] == "u1" and "eventId" in stored[0][2]  # the whole event as payload
    checkpoint = db.execute(
        "SELECT cursor, rows_committed FROM ingest_checkpoints WHERE source = %s", (source,)
    ).fetchone()
    assert checkpoint == ("c1", 9)
    stats = chain.crawler.stats
    assert stats.get_value(f"dedup/events/maybe_seen/{source}") == 6  # the repeated page took the ON CONFLICT path
    assert stats.get_value("pg/rows_duplicate/events") >= 6


async def test_invalid_events_become_dead_letters_and_the_page_carries_on(make_chain, db):
    source = f"api-{uuid.uuid4().hex[:6]}"
    events = page(source, [f"{source}-{n}" for n in range(3)])
    events.append({"eventId": f"{source}-bad", "type": "click", "ts": "last tuesday"})
    events.append({"eventId": f"{source}-nots", "type": "click"})
    events.append({"eventId": "", "type": "click", "ts": 1790856000})
    async with make_chain() as chain:
        out = await chain.push(EventBatch(source, events))
    assert len(out.rows) + len(out.fresh_rows) == 3
    assert db.execute("SELECT count(*) FROM events WHERE source = %s", (source,)).fetchone()[0] == 3
    letters = db.execute(
        "SELECT reason, fields FROM dead_letters WHERE source = %s ORDER BY reason, fields", (source,)
    ).fetchall()
    assert letters == [
        ("event missing id, type or timestamp", ["eventId"]),
        ("event missing id, type or timestamp", ["ts"]),
        ("invalid timestamp: not an ISO-8601 timestamp or epoch number", ["ts"]),
    ]


async def test_redis_down_loses_nothing(make_chain, db):
    source = f"api-{uuid.uuid4().hex[:6]}"
    async with make_chain(redis=True) as chain:
        dedup = chain.pipeline("DedupPipeline")
        await dedup.redis.aclose()
        dedup.redis = __import__("redis.asyncio").asyncio.Redis.from_url("redis://127.0.0.1:1/0")
        dedup.blooms.clear()
        await chain.push(EventBatch(source, page(source, [f"{source}-{n}" for n in range(5)])))
    assert db.execute("SELECT count(*) FROM events WHERE source = %s", (source,)).fetchone()[0] == 5
    assert chain.crawler.stats.get_value("dedup/errors/ConnectionError") == 1


TIMESTAMPS = [
    "2026-10-01T12:00:01.270Z",
    "2026-10-01T12:00:01.270+00:00",
    "2026-10-01T12:00:01Z",
    "2026-10-01T12:00:01.123456+00:00",
    "2026-10-01T14:00:01+02:00",
    "2026-10-01T12:00:01",
    "2026-10-01T12Z",
    "2026-10-01",
    " 2026-10-01T12:00:01Z ",
    "20261001",
    "1790856001270",
    1790856001270,
    1790856001,
    1790856001.27,
    1790856001270.5,
    0.5,
    1790856001270000,
    -5,
]


def test_fast_timestamp_path_reads_what_the_general_parser_reads(db):
    from crawler.normalize import timestamp
    from pipelines.validate import event_time

    for value in TIMESTAMPS:
        text = event_time(value)
        # the text goes to COPY as is: PostgreSQL must read the same instant
        assert db.execute("SELECT %s::text::timestamptz", (text,)).fetchone()[0] == timestamp(value), value
    for bad in ("last tuesday", "2026-13-01T00:00:00Z", True, None, 10**20, "xxxx-10-01T00", float("nan"), 1e300):
        with pytest.raises(ValueError) as fast:
            event_time(bad)
        with pytest.raises(ValueError) as general:
            timestamp(bad)
        assert str(fast.value) == str(general.value)
