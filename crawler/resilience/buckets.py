"""Rate-limit buckets: when may the next request to a key go?

A bucket is a reservation clock (GCRA): each request reserves the next free
slot, ``interval`` after the previous one (``burst`` slots may be taken at
once), and sleeps until its slot. On top of the configured rate, a bucket
keeps what the server told us:

- ``adapt``: the server's remaining budget spread evenly over the time left in
  its window, counting the requests already reserved or in flight (the server
  has not counted them yet). With nothing left, the key pauses until the reset.
- ``pause``: nothing goes before a given time (``Retry-After``, soft blocks).

A reservation further away than ``max_wait`` is not taken: the caller waits and
asks again, so a faster budget learned meanwhile applies at once. In-flight
requests are leased (scored by expiry), so a worker that dies mid-request does
not hold budget forever.

``RedisBuckets`` runs each step as one atomic Lua script on Redis's clock, so
any number of workers share one limit; ``LocalBuckets`` is the same algorithm
in process. Times are milliseconds.

``take`` is ``reserve`` for the crawler's hot path. On Redis, one round trip
reserves up to ``batch`` consecutive slots of the key for this worker, but only
slots due within ``batch_ms`` (so only fast keys batch: a 1/s broker site
still gets one slot per round trip). The worker hands them out in order; a slot
late by over half an interval is given back (used, it would bunch with the next
one). Slots held this way are leased like requests in flight, so a budget still
counts them. Batching is for keys without a server budget: once any worker
learns a key's budget (``adapt``) or pauses it, the key is marked and reserved
one request at a time; and a held slot's request goes only after ``confirm``
(Redis said the key is unmarked within CONFIRM_MS before it goes: one HGET
shared by the slots going together), else the held slots are given back.
Answered requests' leases are given back in the key's next reservation (or
within RELEASE_DELAY).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from crawler.resilience.redis_clock import NOW_MS, now_arg

logger = logging.getLogger(__name__)

HASH_TTL_MS = 3_600_000
MAX_PIGGYBACK = 1000  # leases given back within one reservation (Lua's unpack has a stack limit)

RESERVE = (
    NOW_MS
    + """
local h = redis.call('HMGET', KEYS[1], 'tat', 'interval', 'interval_until', 'pause_until')
local interval = tonumber(ARGV[1])
if h[2] and tonumber(h[3]) and tonumber(h[3]) > now then interval = tonumber(h[2]) end
local tat = tonumber(h[1]) or 0
local grant = math.max(now, tat - (tonumber(ARGV[2]) - 1) * interval, tonumber(h[4]) or 0)
local wait = grant - now
if wait > tonumber(ARGV[5]) then return {0, wait} end
redis.call('HSET', KEYS[1], 'tat', math.max(tat, grant) + interval)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], grant + tonumber(ARGV[4]), ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return {1, wait}
"""
)

# RESERVE for up to ARGV[7] slots: the first within max_wait, the others within ARGV[8] ms; first
# gives back the leases ARGV[10 .. 9 + ARGV[9]] (answered requests, unused slots)
RESERVE_BATCH = (
    NOW_MS
    + """
local released = tonumber(ARGV[9])
if released > 0 then redis.call('ZREM', KEYS[2], unpack(ARGV, 10, 9 + released)) end
local h = redis.call('HMGET', KEYS[1], 'tat', 'interval', 'interval_until', 'pause_until', 'nobatch')
local interval = tonumber(ARGV[1])
if h[2] and tonumber(h[3]) and tonumber(h[3]) > now then interval = tonumber(h[2]) end
local tat = tonumber(h[1]) or 0
-- a key with a server budget, or ever paused, is reserved one request at a time
local count = tonumber(ARGV[7])
if h[5] then count = 1 end
local ahead = (tonumber(ARGV[2]) - 1) * interval
local pause = tonumber(h[4]) or 0
local lease = tonumber(ARGV[4])
local waits, leases = {1}, {}
for i = 1, count do
  local grant = math.max(now, tat - ahead, pause)
  local wait = grant - now
  if i == 1 and wait > tonumber(ARGV[5]) then return {0, tostring(wait)} end
  if i > 1 and wait > tonumber(ARGV[8]) then break end
  tat = math.max(tat, grant) + interval
  waits[i + 1] = tostring(wait)
  leases[2 * i - 1] = grant + lease
  leases[2 * i] = ARGV[3] .. i
end
redis.call('HSET', KEYS[1], 'tat', tat)
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
redis.call('ZADD', KEYS[2], unpack(leases))
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return waits
"""
)

ADAPT = (
    NOW_MS
    + """
local released = tonumber(ARGV[7])
if released > 0 then redis.call('ZREM', KEYS[2], unpack(ARGV, 8, 7 + released)) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local available = tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[2])
local time_left, steady = tonumber(ARGV[2]), tonumber(ARGV[3])
local h = redis.call('HMGET', KEYS[1], 'tat', 'interval', 'interval_until', 'pause_until')
local old = steady
if h[2] and tonumber(h[3]) and tonumber(h[3]) > now then old = tonumber(h[2]) end
local interval = steady
local paused = 0
if available <= 0 then
  local until_ms = now + time_left + tonumber(ARGV[4])
  if until_ms > (tonumber(h[4]) or 0) then
    redis.call('HSET', KEYS[1], 'pause_until', until_ms)
    paused = until_ms - now
  end
else
  -- new reservations start after the last one already taken: spread over what is left after it
  local queued = math.max(0, (tonumber(h[1]) or 0) - now)
  -- nothing left of this window after the queue: what is reserved now lands in the next one
  if time_left > queued then interval = (time_left - queued) / available end
end
local interval_until = now + time_left + tonumber(ARGV[5])
-- a published budget: no batches of this key any more, and held ones are not confirmed (see take)
redis.call('HSET', KEYS[1], 'interval', interval, 'interval_until', interval_until, 'nobatch', 1)
if h[1] and interval < old then redis.call('HSET', KEYS[1], 'tat', tonumber(h[1]) - (old - interval)) end
-- never expire live state: a pause or a learned interval may outlast the default TTL (daily quotas)
local pause_until = tonumber(redis.call('HGET', KEYS[1], 'pause_until')) or 0
local keep = math.max(tonumber(ARGV[6]), interval_until - now, pause_until - now)
redis.call('PEXPIRE', KEYS[1], math.floor(keep) + 60000)
return {available, tostring(interval), paused}
"""
)

PAUSE = (
    NOW_MS
    + """
local until_ms = now + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'nobatch', 1)  -- ever paused: no batches, held slots not confirmed
if until_ms > (tonumber(redis.call('HGET', KEYS[1], 'pause_until')) or 0) then
  redis.call('HSET', KEYS[1], 'pause_until', until_ms)
  redis.call('PEXPIRE', KEYS[1], math.max(tonumber(ARGV[2]), tonumber(ARGV[1])))
  return 1
end
return 0
"""
)


@dataclass(frozen=True)
class Adapted:
    available: int  # budget left after the requests already reserved or in flight
    interval_ms: float  # spacing now used for the key
    paused_ms: float  # > 0: the key was paused for this long (budget exhausted)


@dataclass(frozen=True)
class Slot:
    reserved: bool
    wait_ms: float  # reserved: until the slot; else: until a slot would be free
    token: str = ""  # the lease to give back with ``release``
    held: bool = False  # from an earlier batch: ``confirm`` it once its time has come


@dataclass
class _Held:
    """Slots of one key this worker reserved in a batch: (due, token), due in local monotonic ms."""

    params: tuple  # (interval, burst, lease) they were reserved with
    checked: float  # local ms when Redis last said the key was neither paused nor budgeted
    slots: deque = field(default_factory=deque)


class RedisBuckets:
    RELEASE_DELAY = 0.02  # releases are batched: one pipelined round trip for all within 20 ms
    CONFIRM_MS = 5.0  # a held slot goes within this long of Redis saying the key is still unpaused

    def __init__(self, redis, prefix: str, clock=None, batch: int = 1, batch_ms: float = 0.0):
        self.redis = redis
        self.prefix = prefix + "ratelimit:"
        self.clock = clock  # None: Redis's clock (see redis_clock)
        self.batch, self.batch_ms = max(1, batch), batch_ms
        self._releases: dict[str, list[str]] = {}
        self._flusher: asyncio.Task | None = None
        self._held: dict[str, _Held] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._worker = uuid.uuid4().hex[:12]
        self._batches = itertools.count()
        self._reserve = redis.register_script(RESERVE)
        self._reserve_batch = redis.register_script(RESERVE_BATCH)
        self._adapt = redis.register_script(ADAPT)
        self._pause = redis.register_script(PAUSE)

    def _keys(self, key: str) -> list[str]:
        return [f"{self.prefix}{{{key}}}", f"{self.prefix}{{{key}}}:inflight"]

    def _local_ms(self) -> float:
        """This worker's clock for held slots (the test clock when one is given)."""
        return (self.clock() if self.clock is not None else time.monotonic()) * 1000

    async def reserve(
        self, key: str, interval_ms: float, burst: int, token: str, lease_ms: float, max_wait_ms: float
    ) -> tuple[bool, float]:
        """(reserved, wait): a slot ``wait`` ms from now, or (False, wait) when it is beyond max_wait."""
        ok, wait = await self._reserve(
            keys=self._keys(key),
            args=[interval_ms, burst, token, int(lease_ms), max_wait_ms, HASH_TTL_MS, now_arg(self.clock)],
        )
        return bool(ok), float(wait)

    async def take(self, key: str, interval_ms: float, burst: int, lease_ms: float, max_wait_ms: float) -> Slot:
        """A slot for one request: one held from an earlier batch, else a new batch from Redis."""
        if (slot := self._held_slot(key, (interval_ms, burst, lease_ms))) is not None:
            return slot
        lock = self._locks.get(key) or self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # one batch in flight per key: concurrent requests share it
            if (slot := self._held_slot(key, (interval_ms, burst, lease_ms))) is not None:
                return slot
            return await self._take_batch(key, interval_ms, burst, lease_ms, max_wait_ms)

    def _held_slot(self, key: str, params: tuple) -> Slot | None:
        held = self._held.get(key)
        if held is None:
            return None
        if held.params != params:  # another rate for the key now: not these slots
            self.drop(key)
            return None
        now = self._local_ms()
        late = min(params[0] / 2, self.batch_ms)  # later than this, it would bunch with the next one
        while held.slots:
            due, token = held.slots.popleft()
            if due + late >= now:
                return Slot(True, max(0.0, due - now), token, held=True)
            self._give_back(key, token)
        return None

    async def confirm(self, key: str, slot: Slot) -> bool:
        """Before a held slot's request goes: was the key paused or given a server budget by
        any worker since the batch? One HGET, shared by the slots going within CONFIRM_MS. If
        so, the slot and the others held are given back (False): reserve again."""
        if not slot.held:
            return True
        held = self._held.get(key)
        if held is not None and self._local_ms() <= held.checked + self.CONFIRM_MS:
            return True
        lock = self._locks.get(key) or self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # the requests going together share one answer
            held = self._held.get(key)
            if held is not None and self._local_ms() <= held.checked + self.CONFIRM_MS:
                return True
            now = self._local_ms()
            if held is not None and not await self.redis.hexists(self._keys(key)[0], "nobatch"):
                held.checked = now
                return True
        self.drop(key)
        self._give_back(key, slot.token)
        return False

    async def _take_batch(self, key, interval_ms, burst, lease_ms, max_wait_ms) -> Slot:
        released = self._answered(key)
        prefix = f"{self._worker}:{next(self._batches)}:"
        try:
            reply = await self._reserve_batch(
                keys=self._keys(key),
                args=[
                    interval_ms,
                    burst,
                    prefix,
                    int(lease_ms),
                    max_wait_ms,
                    HASH_TTL_MS,
                    self.batch,
                    self.batch_ms,
                    len(released),
                    *released,
                    now_arg(self.clock),
                ],
            )
        except BaseException:  # given back with the next round trip instead
            self._releases.setdefault(key, []).extend(released)
            raise
        if not int(reply[0]):
            return Slot(False, float(reply[1]))
        now = self._local_ms()
        waits = [float(w) for w in reply[1:]]
        if len(waits) > 1:  # keep the others for the next requests, in order
            held = self._held.setdefault(key, _Held((interval_ms, burst, lease_ms), now))
            held.checked = now
            held.slots.extend((now + wait, f"{prefix}{i}") for i, wait in enumerate(waits[1:], start=2))
        return Slot(True, waits[0], f"{prefix}1")

    def drop(self, key: str) -> None:
        """Give back this worker's held slots of ``key`` (the key was paused, or its rate changed)."""
        held = self._held.pop(key, None)
        if held is not None:
            for _, token in held.slots:
                self._give_back(key, token)

    async def release(self, key: str, token: str) -> None:
        """The request is answered: its lease ends (batched; a lost batch only means the
        leases run out on their own, counting as in flight a little longer)."""
        self._give_back(key, token)

    def _answered(self, key: str) -> list[str]:
        """The key's leases to give back with its next script (a script's arguments are bounded)."""
        pending = self._releases.pop(key, [])
        if len(pending) > MAX_PIGGYBACK:
            self._releases[key] = pending[MAX_PIGGYBACK:]  # the flush takes the rest
        return pending[:MAX_PIGGYBACK]

    def _give_back(self, key: str, token: str) -> None:
        self._releases.setdefault(key, []).append(token)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(self.RELEASE_DELAY)
        try:
            await self.flush()
        except Exception as exc:  # Redis hiccup: leases expire by themselves
            logger.warning("rate limit: releasing leases failed (%s); they will expire", type(exc).__name__)

    async def flush(self) -> None:
        releases, self._releases = self._releases, {}
        if releases:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, tokens in releases.items():
                    pipe.zrem(self._keys(key)[1], *tokens)
                await pipe.execute()

    async def close(self) -> None:
        """Give back every held slot and answered lease now (the worker stops)."""
        for key in list(self._held):
            self.drop(key)
        await self.flush()

    async def adapt(
        self, key: str, remaining: int, time_left_ms: float, steady_ms: float, margin_ms: float, window_ms: float
    ) -> Adapted:
        """Spread ``remaining`` over ``time_left_ms`` (or pause the key until the reset when
        nothing is left); the learned spacing holds until one ``window_ms`` after the reset."""
        released = self._answered(key)  # what is answered is no longer in flight
        available, interval, paused = await self._adapt(
            keys=self._keys(key),
            args=[
                remaining,
                time_left_ms,
                steady_ms,
                margin_ms,
                window_ms,
                HASH_TTL_MS,
                len(released),
                *released,
                now_arg(self.clock),
            ],
        )
        self.drop(key)  # a key with a budget is reserved one request at a time from now on
        return Adapted(int(available), float(interval), float(paused))

    async def pause(self, key: str, ms: float) -> bool:
        self.drop(key)
        return bool(await self._pause(keys=self._keys(key)[:1], args=[int(ms), HASH_TTL_MS, now_arg(self.clock)]))


@dataclass
class _Bucket:
    tat: float = 0.0
    interval: float | None = None
    interval_until: float = 0.0
    pause_until: float = 0.0
    inflight: dict[str, float] = field(default_factory=dict)  # token -> lease expiry

    def purge(self, now: float) -> None:
        if self.inflight:
            for token in [t for t, expiry in self.inflight.items() if expiry <= now]:
                del self.inflight[token]


class LocalBuckets:
    """The same algorithm in process (no REDIS_URL): one worker, one limit."""

    def __init__(self, clock=time.monotonic):
        self.buckets: dict[str, _Bucket] = {}
        self.clock = clock
        self.tokens = itertools.count()

    def _now(self) -> float:
        return self.clock() * 1000

    def _bucket(self, key: str) -> _Bucket:
        return self.buckets.setdefault(key, _Bucket())

    async def reserve(self, key, interval_ms, burst, token, lease_ms, max_wait_ms):
        now, bucket = self._now(), self._bucket(key)
        if bucket.interval is not None and bucket.interval_until > now:
            interval_ms = bucket.interval
        grant = max(now, bucket.tat - (burst - 1) * interval_ms, bucket.pause_until)
        if grant - now > max_wait_ms:
            return False, grant - now
        bucket.tat = max(bucket.tat, grant) + interval_ms
        bucket.purge(now)
        bucket.inflight[token] = grant + lease_ms
        return True, grant - now

    async def take(self, key, interval_ms, burst, lease_ms, max_wait_ms) -> Slot:
        token = f"local:{next(self.tokens)}"
        reserved, wait = await self.reserve(key, interval_ms, burst, token, lease_ms, max_wait_ms)
        return Slot(reserved, wait, token if reserved else "")

    async def release(self, key, token):
        self._bucket(key).inflight.pop(token, None)

    async def confirm(self, key, slot) -> bool:
        return True  # nothing is held in process

    async def close(self):
        pass

    async def adapt(self, key, remaining, time_left_ms, steady_ms, margin_ms, window_ms):
        now, bucket = self._now(), self._bucket(key)
        bucket.purge(now)
        available = remaining - len(bucket.inflight)
        old = bucket.interval if bucket.interval is not None and bucket.interval_until > now else steady_ms
        interval, paused = steady_ms, 0.0
        if available <= 0:
            until = now + time_left_ms + margin_ms
            if until > bucket.pause_until:
                bucket.pause_until, paused = until, until - now
        else:  # new reservations start after the last one already taken
            queued = max(0.0, bucket.tat - now)
            if time_left_ms > queued:  # else: what is reserved now lands in the next window
                interval = (time_left_ms - queued) / available
        bucket.interval, bucket.interval_until = interval, now + time_left_ms + window_ms
        if bucket.tat and interval < old:
            bucket.tat -= old - interval
        return Adapted(available, interval, paused)

    async def pause(self, key, ms):
        now, bucket = self._now(), self._bucket(key)
        if now + ms > bucket.pause_until:
            bucket.pause_until = now + ms
            return True
        return False
