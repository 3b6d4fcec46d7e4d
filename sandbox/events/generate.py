"""The events API's data set: a deterministic month of synthetic analytics events.

The events API must serve a million events at tens of thousands a second, so
the data is built once, as bytes: each event's JSON is rendered once (from
pre-rendered fragments, which is several times faster than building a dict and
serialising it) and appended to one contiguous buffer, each event followed by a
comma. A page of consecutive events is then one slice of that buffer, copied
once into the response; nothing is serialised per request.

What makes it realistic (see shared/reference/events-api.md):

- 8 types with the reference's weights (page_view 35%, click 25%, api_call and
  form_submit 10%, scroll, purchase, error and video_play 5% each), 3 device
  types, ~3,000 users and ~60,000 sessions; a session is one user on one device
  and its events are close in time.
- 31 days of millisecond timestamps (October 2026), sorted by (timestamp, id);
  equal timestamps do occur. Each event's timestamp is written in one of four
  forms, chosen per event, so one page mixes them: ISO-8601 with ``Z``, ISO-8601
  with ``+00:00``, epoch milliseconds (a number) and epoch seconds (a number
  with three decimals, so nothing is lost).
- Ids are ``evt_`` + 12 hex digits, unique (a bijective mix of the position),
  unrelated to time order.

The same (seed, count) always gives the same bytes.
"""

from __future__ import annotations

import datetime as dt
import random
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import accumulate, islice, repeat

import orjson

DEFAULT_COUNT = 1_000_000
START = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
DAYS = 31
START_MS = int(START.timestamp() * 1000)
SPAN_MS = DAYS * 86_400_000
END_MS = START_MS + SPAN_MS

# Weights in twentieths (5% steps): a draw modulo 20 picks the type.
TYPE_WEIGHTS = {
    "page_view": 7,
    "click": 5,
    "api_call": 2,
    "form_submit": 2,
    "scroll": 1,
    "purchase": 1,
    "error": 1,
    "video_play": 1,
}
TYPES = list(TYPE_WEIGHTS)
DEVICE_TYPES = ["desktop", "mobile", "tablet"]
USERS = 3_000
SESSIONS = 60_000
VARIANTS = 64  # pre-rendered `properties` objects per type
# Timestamp forms, drawn per event in tenths: ISO Z 4, ISO +00:00 2, epoch ms 3, epoch s 1.

_PATHS = [
    "/",
    "/pricing",
    "/docs",
    "/blog",
    "/signup",
    "/login",
    "/account",
    "/cart",
    "/checkout",
    "/search",
    "/features",
    "/about",
    "/contact",
    "/docs/api",
    "/blog/launch",
    "/settings",
]
_REFERRERS = [None, "google", "newsletter", "twitter", "direct", "partner"]
_ELEMENTS = ["button#signup", "a.nav-link", "button.buy", "a.footer", "img.hero", "button#search", "li.menu-item"]
_ENDPOINTS = ["/v1/users", "/v1/orders", "/v1/search", "/v1/items", "/v1/auth/token", "/v1/reports"]
_FORMS = ["signup", "contact", "newsletter", "checkout", "feedback"]
_ERRORS = [
    ("E_TIMEOUT", "Request timed out"),
    ("E_NETWORK", "Network unreachable"),
    ("E_VALIDATION", "Invalid input"),
    ("E_INTERNAL", "Unexpected error"),
]


def _properties(rng: random.Random, event_type: str) -> dict:
    """One small, type-specific `properties` object."""
    path = rng.choice(_PATHS)
    if event_type == "page_view":
        return {"path": path, "referrer": rng.choice(_REFERRERS), "loadMs": rng.randint(80, 2500)}
    if event_type == "click":
        return {"path": path, "element": rng.choice(_ELEMENTS)}
    if event_type == "api_call":
        method, status = rng.choice(["GET", "GET", "POST", "PUT", "DELETE"]), rng.choice([200, 200, 201, 404, 500])
        return {
            "endpoint": rng.choice(_ENDPOINTS),
            "method": method,
            "status": status,
            "durationMs": rng.randint(5, 900),
        }
    if event_type == "form_submit":
        return {"form": rng.choice(_FORMS), "fields": rng.randint(1, 12), "success": rng.random() < 0.9}
    if event_type == "scroll":
        return {"path": path, "depth": rng.choice([25, 50, 75, 100])}
    if event_type == "purchase":
        return {
            "amount": round(rng.uniform(4, 400), 2),
            "currency": rng.choice(["USD", "USD", "EUR", "GBP"]),
            "items": rng.randint(1, 6),
        }
    if event_type == "error":
        code, message = rng.choice(_ERRORS)
        return {"code": code, "message": message, "path": path}
    return {"videoId": f"vid_{rng.randrange(500):03d}", "positionSec": rng.randint(0, 1800)}


def _mix48(position: int, salt: int) -> int:
    """A bijection on 48-bit integers (odd multiplications and xor-shifts), so ids never collide."""
    mask = (1 << 48) - 1
    x = (position + salt) & mask
    x = (x * 0x9E3779B97F4B) & mask
    x ^= x >> 23
    x = (x * 0xD6E8FEB86659) & mask  # odd
    return x ^ (x >> 21)


@dataclass
class EventSet:
    """The generated events, in served order, with what lookups need.

    ``blob[offsets[i]:offsets[i + 1]]`` is event i's JSON followed by a comma;
    ``timestamps[i]`` its epoch milliseconds; ``types[i]`` its index in TYPES.
    The id key is written as ``"id"``; renaming is a replace on the page
    (``{"id":"evt_`` occurs nowhere else).
    """

    seed: int
    count: int
    blob: bytearray
    offsets: array
    timestamps: array
    types: bytearray
    _by_type: dict[int, array] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self.view = memoryview(self.blob)

    def event_bytes(self, position: int) -> bytes:
        """Event ``position``'s JSON (without the trailing comma)."""
        return bytes(self.view[self.offsets[position] : self.offsets[position + 1] - 1])

    def run(self, start: int, stop: int) -> memoryview:
        """Events ``start..stop-1`` as comma-separated JSON objects (no brackets), without copying."""
        if start >= stop:
            return self.view[0:0]
        return self.view[self.offsets[start] : self.offsets[stop] - 1]

    def pick(self, positions) -> bytes:
        """Non-consecutive events (a type filter), comma-separated."""
        view, offsets = self.view, self.offsets
        return b"".join([view[offsets[p] : offsets[p + 1]] for p in positions])[:-1]

    def range_positions(self, since_ms: int | None, until_ms: int | None) -> tuple[int, int]:
        """[start, stop) positions of events with since <= timestamp < until (binary search)."""
        start = 0 if since_ms is None else bisect_left(self.timestamps, since_ms)
        stop = self.count if until_ms is None else bisect_left(self.timestamps, until_ms)
        return start, max(start, stop)

    def of_type(self, type_index: int) -> array:
        """Sorted positions of one type's events (built on first use, then kept)."""
        if type_index not in self._by_type:
            types = self.types
            self._by_type[type_index] = array("q", [i for i in range(self.count) if types[i] == type_index])
        return self._by_type[type_index]


def generate(seed: int, count: int = DEFAULT_COUNT) -> EventSet:
    """Build the data set; the same arguments always give byte-identical output."""
    rng = random.Random(f"events:{seed}")
    bits = rng.getrandbits
    timestamps = [START_MS + (b * SPAN_MS >> 32) for b in map(bits, repeat(32, count))]
    timestamps.sort()
    salt = rng.getrandbits(48)
    ids = [_mix48(i, salt) for i in range(count)]
    _order_ties_by_id(timestamps, ids)

    props = [[orjson.dumps(_properties(rng, t)) for _ in range(VARIANTS)] for t in TYPES]
    session_user = [rng.randrange(USERS) for _ in range(SESSIONS)]
    sessions = [
        b'"userId":"usr_%04d","sessionId":"ses_%05x","deviceType":"%s"'
        % (session_user[s], s, DEVICE_TYPES[rng.randrange(3)].encode())
        for s in range(SESSIONS)
    ]
    type_of_bucket = [i for i, w in enumerate(TYPE_WEIGHTS.values()) for _ in range(w)]
    type_names = [t.encode() for t in TYPES]
    days = [(START + dt.timedelta(days=d)).strftime("%Y-%m-%dT").encode() for d in range(DAYS)]
    iso_z, iso_off = b'"%s%02d.%03dZ"', b'"%s%02d.%03d+00:00"'
    template = b'{"id":"evt_%012x","type":"%s","timestamp":%s,%s,"properties":%s},'

    blob, offsets, types = bytearray(), array("Q", [0]), bytearray(count)
    last_minute, minute_prefix = -1, b""
    chunk = 1 << 16
    for begin in range(0, count, chunk):
        parts = []
        append = parts.append
        for i in range(begin, min(begin + chunk, count)):
            ts = timestamps[i]
            r = bits(40)
            kind = type_of_bucket[r % 20]
            types[i] = kind
            form = r // 20 % 10
            off = ts - START_MS
            if form < 6:
                minute = off // 60_000
                if minute != last_minute:  # sorted timestamps: the "YYYY-MM-DDTHH:MM:" prefix is mostly reused
                    last_minute = minute
                    minute_prefix = days[minute // 1440] + b"%02d:%02d:" % divmod(minute % 1440, 60)
                stamp = (iso_z if form < 4 else iso_off) % (minute_prefix, off % 60_000 // 1000, off % 1000)
            elif form < 9:
                stamp = b"%d" % ts
            else:
                stamp = b"%d.%03d" % divmod(ts, 1000)
            session = off * (SESSIONS - 8) // SPAN_MS + (r // 200) % 8  # a session's events are close in time
            append(template % (ids[i], type_names[kind], stamp, sessions[session], props[kind][(r >> 20) % VARIANTS]))
        offsets.extend(islice(accumulate(map(len, parts), initial=len(blob)), 1, None))
        blob += b"".join(parts)
    return EventSet(seed, count, blob, offsets, array("q", timestamps), types)


def _order_ties_by_id(timestamps: list[int], ids: list[int]) -> None:
    """Within runs of equal timestamps, give the ids in ascending order (served order is (timestamp, id))."""
    i, n = 1, len(timestamps)
    while i < n:
        if timestamps[i] != timestamps[i - 1]:
            i += 1
            continue
        start = i - 1
        while i < n and timestamps[i] == timestamps[start]:
            i += 1
        ids[start:i] = sorted(ids[start:i])


@lru_cache(maxsize=1)
def cached(seed: int, count: int) -> EventSet:
    """The data set for these arguments, generated once per process."""
    return generate(seed, count)
