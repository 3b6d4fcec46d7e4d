"""The simulated events API, over plain HTTP against the session's `python -m sandbox` (20,000 events).

Each test first sets the behaviour it needs with POST /events/config (from the
startup settings, so tests do not depend on each other's leftovers). Tests of
rate windows and cursor expiry freeze the server's clock and step it forward
(POST /events/clock) instead of sleeping.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import math
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from sandbox.events.config import ID_FIELDS
from sandbox.events.generate import END_MS, START_MS, generate
from sandbox.events.ratelimit import FixedWindow
from support import ROOT, Reply, http

COUNT = 20_000  # --events-count of the session's sandbox
KEY = {"X-API-Key": "sandbox-key"}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def call(url: str, params: dict | None = None, headers: dict | None = KEY, data: dict | None = None) -> Reply:
    return http(url, params=params, headers=headers, data=data)


@pytest.fixture
def api(sandbox):
    """The events API's base URL, reset to its startup settings with a budget no test exhausts by accident."""
    base = sandbox["events"]
    configure(base, rate_limit=100_000)
    return base


def configure(base: str, **changes) -> dict:
    reply = call(base + "/events/config", data={"defaults": True, **changes})
    assert reply.status == 200, reply.body
    return reply.json()


def stats(base: str) -> dict:
    return call(base + "/events/stats", headers=None).json()


def clock(base: str, **control) -> float:
    """Freeze or advance the server's clock (``freeze=True``, ``advance=S``); its time afterwards.
    The next POST /events/config puts it back on real time."""
    reply = call(base + "/events/clock", headers=None, data=control)
    assert reply.status == 200, reply.body
    return reply.json()["time"]


def epoch_ms(value) -> int:
    """An event timestamp in any of the served forms, as epoch milliseconds."""
    if isinstance(value, str):
        return (dt.datetime.fromisoformat(value) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(
            milliseconds=1
        )
    return value if value > 10**11 else round(value * 1000)


def form(value) -> str:
    if isinstance(value, str):
        return "iso_z" if value.endswith("Z") else "iso_offset" if value.endswith("+00:00") else "iso?"
    return "epoch_ms" if isinstance(value, int) else "epoch_s"


def walk(base: str, params: dict, retry: bool = False, flat: bool = False) -> tuple[list[dict], list[dict]]:
    """Follow the cursor to the end; (events, page documents). With retry, 5xx and unparsable pages are retried."""
    events, pages, cursor = [], [], None
    while True:
        reply = call(base + "/events", {**params, "cursor": cursor} if cursor else params)
        try:
            assert reply.status == 200, (reply.status, reply.body[:200])
            doc = reply.json()
        except (AssertionError, ValueError):
            if retry and (reply.status >= 500 or reply.status == 200):
                continue
            raise
        pages.append(doc)
        events.extend(doc["data"])
        cursor = doc["nextCursor"] if flat else doc["pagination"]["nextCursor"]
        if not cursor:
            return events, pages


def test_walking_the_cursor_returns_every_event_once_in_order(api):
    events, pages = walk(api, {"limit": 5000})
    assert len(pages) == COUNT // 5000 and all(p["meta"]["total"] == COUNT for p in pages)
    assert [p["meta"]["returned"] for p in pages] == [len(p["data"]) for p in pages]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == COUNT and all(re.fullmatch(r"evt_[0-9a-f]{12}", i) for i in ids)
    keys = [(epoch_ms(e["timestamp"]), e["id"]) for e in events]
    assert keys == sorted(keys) and keys[0][0] >= START_MS and keys[-1][0] < END_MS
    assert keys[-1][0] - keys[0][0] > 30 * 86_400_000  # a month of events
    last = pages[-1]["pagination"]
    assert last["hasMore"] is False and last["nextCursor"] is None and pages[0]["pagination"]["cursorExpiresIn"] == 60
    shares = {t: n / COUNT for t, n in Counter(e["type"] for e in events).items()}
    assert len(shares) == 8 and abs(shares["page_view"] - 0.35) < 0.02 and abs(shares["purchase"] - 0.05) < 0.01
    assert len({e["deviceType"] for e in events}) == 3 and len({e["userId"] for e in events}) <= 3000
    assert all(isinstance(e["properties"], dict) and e["properties"] for e in events)
    counters = stats(api)
    assert counters["distinct_events_served"] == counters["events_served"] == counters["total_events"] == COUNT
    assert counters["requests"] == {"200": len(pages)} and counters["first_response_at"] <= time.time()


def test_limit_is_capped_silently_and_defaults_to_100(api):
    page = call(api + "/events", {"limit": 100_000}).json()
    assert len(page["data"]) == page["pagination"]["limit"] == 5000
    assert len(call(api + "/events").json()["data"]) == 100
    configure(api, page_cap=50)
    page = call(api + "/events", {"limit": 1000}).json()
    assert len(page["data"]) == page["pagination"]["limit"] == 50


def test_since_until_partitions_cover_the_set_disjointly(api):
    bounds = [START_MS + k * 7 * 86_400_000 for k in range(5)] + [END_MS]
    seen, total = [], 0
    for k, (since, until) in enumerate(itertools.pairwise(bounds)):
        iso = dt.datetime.fromtimestamp(since / 1000, dt.UTC).isoformat().replace("+00:00", "Z")
        params = {"limit": 3000, "since": iso if k % 2 else since, "until": until}
        events, pages = walk(api, params)
        assert all(since <= epoch_ms(e["timestamp"]) < until for e in events)
        total += pages[0]["meta"]["total"]
        assert pages[0]["meta"]["total"] == len(events) > 0
        seen += [e["id"] for e in events]
    assert total == len(seen) == len(set(seen)) == COUNT
    purchases, _ = walk(api, {"limit": 5000, "type": "purchase", "since": bounds[1]})
    assert purchases and all(e["type"] == "purchase" and epoch_ms(e["timestamp"]) >= bounds[1] for e in purchases)


def test_a_server_that_ignores_the_range_can_be_detected(api):
    configure(api, no_range=True)
    page = call(api + "/events", {"limit": 10, "since": START_MS + 20 * 86_400_000}).json()
    assert page["meta"]["total"] == COUNT and epoch_ms(page["data"][0]["timestamp"]) < START_MS + 86_400_000


def test_timestamp_forms_are_mixed_within_one_page(api):
    page = call(api + "/events", {"limit": 100}).json()
    assert {form(e["timestamp"]) for e in page["data"]} == {"iso_z", "iso_offset", "epoch_ms", "epoch_s"}


def test_an_expired_cursor_is_refused_with_its_age(api):
    configure(api, cursor_ttl=1)
    clock(api, freeze=True)
    page = call(api + "/events", {"limit": 10}).json()
    assert page["pagination"]["cursorExpiresIn"] == 1
    cursor = page["pagination"]["nextCursor"]
    clock(api, advance=0.5)
    assert call(api + "/events", {"limit": 10, "cursor": cursor}).status == 200  # within its lifetime
    clock(api, advance=2)  # 1.5 s past its expiry
    expired = call(api + "/events", {"limit": 10, "cursor": cursor})
    assert expired.status == 400 and expired.json()["error"] == {
        "code": "CURSOR_EXPIRED",
        "message": "Cursor expired 2 seconds ago",
    }
    configure(api, expired_status=410)  # back on real time, which the cursor's expiry is not far behind
    clock(api, freeze=True, advance=2)
    assert call(api + "/events", {"limit": 10, "cursor": cursor}).status == 410
    out_of_range = base64.urlsafe_b64encode(json.dumps({"v": 1, "p": -1, "exp": 2e10}).encode()).decode()
    for bad in ("garbage!", "e30", out_of_range):  # not base64, {}, a position before the first
        reply = call(api + "/events", {"cursor": bad})
        assert reply.status == 400 and reply.json()["error"]["code"] == "INVALID_CURSOR"


def test_rate_limit_headers_on_every_response_and_429_over_budget(api):
    configure(api, rate_limit=3, rate_window=2)
    clock(api, freeze=True)  # every request below falls in one window, however slow the machine
    replies = [
        call(api + "/events", {"limit": 1}),
        call(api + "/events", {"limit": "x"}),
        call(api + "/events", headers={"X-API-Key": "wrong"}),
        call(api + "/events", {"limit": 1}),
    ]
    assert [r.status for r in replies] == [200, 400, 401, 200]
    assert all(all(h in r.headers for h in RATE_HEADERS) for r in replies)
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "1", "0"]  # 401s are free
    refused = [call(api + "/events", {"limit": 1}) for _ in range(2)]
    assert [r.status for r in refused] == [429, 429]
    assert refused[0].json()["error"]["code"] == "RATE_LIMITED" and refused[0].headers["X-RateLimit-Limit"] == "3"
    retry_after = int(refused[0].headers["Retry-After"])
    assert retry_after == 2 and refused[0].headers["X-RateLimit-Reset"] == "2"
    assert call(api + "/events", {"limit": 1, "api_key": "sandbox-key"}, headers={}).status == 200  # own pool
    query_limited = call(api + "/events", {"limit": 1, "api_key": "sandbox-key"}, headers={})
    assert query_limited.status == 429 and query_limited.headers["X-RateLimit-Limit"] == "1"  # half of 3
    clock(api, advance=retry_after - 0.5)
    assert call(api + "/events", {"limit": 1}).status == 429  # half a second early
    clock(api, advance=0.5)  # waited exactly Retry-After
    assert call(api + "/events", {"limit": 1}).status == 200
    assert stats(api)["rate_limited"] == 4

    configure(api, rate_limit=5, rate_window=30, reset_style="epoch")
    now = clock(api, freeze=True)
    assert int(call(api + "/events", {"limit": 1}).headers["X-RateLimit-Reset"]) == math.ceil(now + 30)
    configure(api, rate_limit=5, rate_window=30)
    clock(api, freeze=True)
    assert call(api + "/events", {"limit": 1}).headers["X-RateLimit-Reset"] == "30"


def test_server_errors_carry_rate_headers_and_retries_lose_nothing(api):
    configure(api, fault_rate=1)
    faults = [call(api + "/events", {"limit": 1}) for _ in range(12)]
    assert {r.status for r in faults} <= {500, 502, 503} and len({r.status for r in faults}) > 1
    assert all(all(h in r.headers for h in RATE_HEADERS) for r in faults)
    kinds = {r.headers["Content-Type"].split(";")[0] for r in faults}
    assert kinds == {"application/json", "text/html"}
    configure(api, fault_rate=0.3, truncate_rate=0.2)
    events, _ = walk(api, {"limit": 2000}, retry=True)
    assert len(events) == len({e["id"] for e in events}) == COUNT
    counters = stats(api)
    assert counters["faults"] > 0 and counters["truncated"] > 0 and counters["distinct_events_served"] == COUNT


def test_truncated_bodies_are_200s_that_do_not_parse(api):
    configure(api, truncate_rate=1)
    for _ in range(5):
        reply = call(api + "/events", {"limit": 50})
        assert reply.status == 200 and int(reply.headers["Content-Length"]) == len(reply.body)
        with pytest.raises(ValueError):
            json.loads(reply.body)
    counters = stats(api)
    assert counters["truncated"] == 5 and counters["distinct_events_served"] == 0


def test_duplicates_repeat_the_previous_page_and_stats_count_distinct_ids(api):
    configure(api, duplicate_rate=1)
    events, pages = walk(api, {"limit": 1000})
    ids = [e["id"] for e in events]
    assert len(set(ids)) == COUNT < len(ids)
    for previous, page in itertools.pairwise(pages):
        before = {e["id"] for e in previous["data"]}
        repeated = [e["id"] for e in page["data"] if e["id"] in before]
        assert 1 <= len(repeated) <= 5 and [e["id"] for e in page["data"][: len(repeated)]] == repeated
    counters = stats(api)
    assert counters["distinct_events_served"] == COUNT and counters["events_served"] == len(ids)
    assert counters["duplicate_pages"] == len(pages) - 1


def test_flat_form_and_renamed_id_field(api):
    configure(api, flat=True, id_field="eventId")
    events, pages = walk(api, {"limit": 5000}, flat=True)
    assert set(pages[0]) == {"data", "hasMore", "nextCursor"} and len(events) == COUNT
    assert all("eventId" in e and "id" not in e for e in events)
    for field in ID_FIELDS:
        configure(api, id_field=field)
        assert field in call(api + "/events", {"limit": 1}).json()["data"][0]


def test_same_request_same_bytes(api):
    first = call(api + "/events", {"limit": 500}).json()["pagination"]["nextCursor"]
    bodies = [call(api + "/events", {"limit": 500, "cursor": first}).body for _ in range(2)]
    data = [body.split(b'],"pagination"')[0] for body in bodies]
    assert data[0] == data[1] and len(data[0]) > 500 * 100
    one, same, other = generate(7, 3000), generate(7, 3000), generate(8, 3000)
    assert one.blob == same.blob and one.blob != other.blob


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01"}, "until"),
        ({"type": "nope"}, "type"),
    ],
)
def test_bad_parameters_are_4xx_json_naming_the_parameter(api, params, name):
    reply = call(api + "/events", params)
    assert reply.status == 400 and reply.headers["Content-Type"].startswith("application/json")
    error = reply.json()["error"]
    assert error["code"] == "INVALID_PARAMETER" and error["parameter"] == name and error["message"].startswith(name)


def test_bad_key_and_bad_settings(api):
    for headers, params in (({}, None), ({"X-API-Key": "nope"}, None), ({}, {"api_key": "nope"})):
        reply = call(api + "/events", params, headers=headers)
        assert reply.status == 401 and reply.json()["error"]["code"] == "UNAUTHORIZED"
    for body, name in (
        ({"page_cap": 0}, "page_cap"),
        ({"colour": "red"}, "colour"),
        ({"flat": "yes"}, "flat"),
        ({"fault_rate": 0.8, "truncate_rate": 0.5}, "fault_rate"),
    ):
        reply = call(api + "/events/config", data=body)
        assert reply.status == 400 and reply.json()["error"]["parameter"] == name


def test_fixed_window_counts_only_admitted_requests():
    now = [100.0]
    window = FixedWindow(2, 10, clock=lambda: now[0])
    assert window.peek().headers["X-RateLimit-Remaining"] == "2"
    assert [window.take().allowed for _ in range(3)] == [True, True, False]
    now[0] += 9.5
    refused = window.take()
    assert not refused.allowed and refused.retry_after == 1 and refused.headers["X-RateLimit-Reset"] == "1"
    now[0] += 0.5
    assert window.take().allowed and window.peek().headers["X-RateLimit-Remaining"] == "1"


def test_cli_options_reach_the_service(tmp_path):
    ports_file = tmp_path / "ports.json"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "--only",
            "events",
            "--free-ports",
            "--ports-file",
            str(ports_file),
            "--events-count",
            "1000",
            "--events-flat",
            "--events-id-field",
            "_id",
            "--events-rate-limit",
            "7",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "events" in process.stdout.readline()
        base = json.loads(ports_file.read_text())["events"]
        assert set(json.loads(ports_file.read_text())) == {"events"}
        reply = call(base + "/events", {"limit": 5})
        assert set(reply.json()) == {"data", "hasMore", "nextCursor"} and "_id" in reply.json()["data"][0]
        assert reply.headers["X-RateLimit-Limit"] == "7"
        assert stats(base)["total_events"] == 1000
    finally:
        process.terminate()
        process.wait(timeout=10)
