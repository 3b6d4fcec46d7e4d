"""Rate-limit buckets and circuit state on real Redis and in process: same behaviour.

Both read a test clock that moves only when a test advances it, so every wait and
interval is exact, however busy the machine.
"""

import asyncio
import time
import uuid

import pytest
import redis.asyncio

from crawler.resilience.buckets import LocalBuckets, RedisBuckets
from crawler.resilience.budget import parse_budget, parse_retry_after
from crawler.resilience.circuits import PASS, PROBE, WAIT, Gate, LocalCircuits, RedisCircuits
from support import REDIS_URL, Clock

KINDS = ["redis", "local"]


@pytest.fixture
async def shared():
    clients, prefix = [], f"test:{uuid.uuid4().hex[:8]}:"

    def client():
        c = redis.asyncio.Redis.from_url(REDIS_URL)
        clients.append(c)
        return c

    yield client, prefix
    for c in clients:
        keys = [k async for k in c.scan_iter(match=prefix + "*")]
        if keys:
            await c.delete(*keys)
        await c.aclose()


def buckets(kind, shared, clock):
    client, prefix = shared
    return RedisBuckets(client(), prefix, clock=clock) if kind == "redis" else LocalBuckets(clock=clock)


def circuits(kind, shared, clock, reset_ms=300, threshold=3):
    client, prefix = shared
    # as read from settings: floats. The probe lease is a Redis TTL (real time): long enough for any test
    args = (float(reset_ms), 60_000.0, threshold, 10_000.0)
    if kind == "redis":
        return RedisCircuits(client(), prefix, *args, clock=clock)
    return LocalCircuits(*args, clock=clock)


@pytest.mark.parametrize("kind", KINDS)
async def test_reservations_are_spaced_by_the_interval(shared, kind, clock):
    b = buckets(kind, shared, clock)
    waits = [(await b.reserve("k", 100, 1, f"t{i}", 60_000, 10_000))[1] for i in range(5)]
    assert waits == [0, 100, 200, 300, 400]
    clock.advance(250)  # two slots have passed: the next is 500 ms after the first, as before
    assert await b.reserve("k", 100, 1, "t5", 60_000, 10_000) == (True, 250)


@pytest.mark.parametrize("kind", KINDS)
async def test_no_reservation_beyond_max_wait(shared, kind, clock):
    b = buckets(kind, shared, clock)
    assert await b.reserve("k", 1000, 1, "a", 60_000, 500) == (True, 0)
    assert await b.reserve("k", 1000, 1, "b", 60_000, 500) == (False, 1000)  # not taken: asked again later
    clock.advance(600)
    assert await b.reserve("k", 1000, 1, "b", 60_000, 500) == (True, 400)


@pytest.mark.parametrize("kind", KINDS)
async def test_adapt_spreads_the_remaining_budget_minus_in_flight(shared, kind, clock):
    b = buckets(kind, shared, clock)
    for i in range(4):  # four requests on their way (the last 750 ms ahead): the server has not counted them
        await b.reserve("k", 250, 1, f"t{i}", 60_000, 10_000)
    adapted = await b.adapt("k", remaining=14, time_left_ms=5000, steady_ms=500, margin_ms=1000, window_ms=10_000)
    # 10 left to spread over the time after the queued ones: (5000 - 1000) / 10
    assert (adapted.available, adapted.interval_ms, adapted.paused_ms) == (10, 400, 0)
    await b.release("k", "t0")
    assert (await b.adapt("k", 14, 5000, 500, 1000, 10_000)).available == 11


@pytest.mark.parametrize("kind", KINDS)
async def test_exhausted_budget_and_retry_after_pause_the_key(shared, kind, clock):
    b = buckets(kind, shared, clock)
    await b.reserve("k", 10, 1, "t", 60_000, 10_000)
    adapted = await b.adapt("k", remaining=1, time_left_ms=2000, steady_ms=10, margin_ms=500, window_ms=10_000)
    assert adapted.available == 0 and adapted.paused_ms == 2500  # until the reset, plus the margin
    assert await b.reserve("k", 10, 1, "u", 60_000, 1000) == (False, 2500)
    clock.advance(2500)
    assert await b.reserve("k", 10, 1, "u", 60_000, 1000) == (True, 0)
    assert await b.pause("other", 800)
    clock.advance(100)
    assert not await b.pause("other", 100)  # a shorter pause never shortens a longer one
    assert await b.reserve("other", 10, 1, "v", 60_000, 10_000) == (True, 700)


@pytest.mark.integration
async def test_two_clients_share_one_redis_bucket(shared, clock):
    first, second = buckets("redis", shared, clock), buckets("redis", shared, clock)
    waits = [
        (await client.reserve("k", 50, 1, uuid.uuid4().hex, 60_000, 10_000))[1]
        for client in (first, second, first, second)
    ]
    assert waits == [0, 50, 100, 150]


@pytest.mark.integration
async def test_leases_of_dead_workers_expire(shared, clock):
    b = buckets("redis", shared, clock)
    await b.reserve("k", 1, 10, "lost", 100, 10_000)  # a worker that died mid-request
    assert (await b.adapt("k", 5, 1000, 10, 0, 1000)).available == 4  # in flight while its lease lasts
    clock.advance(100)
    assert (await b.adapt("k", 5, 1000, 10, 0, 1000)).available == 5


@pytest.mark.parametrize("kind", KINDS)
async def test_circuit_opens_probes_once_and_closes(shared, kind, clock):
    c = circuits(kind, shared, clock)
    for _ in range(2):
        assert await c.failure("d", "", uuid.uuid4().hex) == ""
    assert await c.failure("d", "", uuid.uuid4().hex) == "opened"
    assert await c.gate("d", "x") == Gate(WAIT, 300)
    clock.advance(299)
    assert await c.gate("d", "x") == Gate(WAIT, 1)
    clock.advance(1)
    gates = [await c.gate("d", f"p{i}") for i in range(5)]
    assert [g.decision for g in gates] == [PROBE, WAIT, WAIT, WAIT, WAIT]
    assert gates[0].change == "half_open"
    assert await c.success("d", "p1") == ""  # not the probe
    assert await c.success("d", "p0") == "closed"
    assert (await c.gate("d", "y")).decision == PASS


@pytest.mark.parametrize("kind", KINDS)
async def test_failed_probe_reopens(shared, kind, clock):
    c = circuits(kind, shared, clock, reset_ms=100, threshold=1)
    assert await c.failure("d", "", "f1") == "opened"
    clock.advance(100)
    assert (await c.gate("d", "p")).decision == PROBE
    assert await c.failure("d", "p", "f2") == "reopened"
    assert await c.gate("d", "q") == Gate(WAIT, 100)  # a full cool-down again


@pytest.mark.integration
async def test_only_one_probe_among_workers(shared, clock):
    workers = [circuits("redis", shared, clock, reset_ms=100, threshold=1) for _ in range(4)]
    await workers[0].failure("d", "", "f")
    clock.advance(100)
    gates = await asyncio.gather(*(w.gate("d", f"p{i}") for i, w in enumerate(workers * 5)))
    assert sum(g.decision == PROBE for g in gates) == 1


def test_budget_headers_in_every_reset_style():
    now = 1_800_000_000.0
    seconds = parse_budget({"X-RateLimit-Limit": "600", "X-RateLimit-Remaining": "17", "X-RateLimit-Reset": "42"}, now)
    assert (seconds.limit, seconds.remaining, seconds.reset_in, seconds.reset_style) == (600, 17, 42, "seconds")
    epoch = parse_budget(
        {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(now + 30)}, now
    )
    assert (epoch.reset_in, epoch.reset_style) == (30, "epoch")
    millis = parse_budget(
        {"X-RateLimit-Limit": "10", "X-RateLimit-Remaining": "3", "X-RateLimit-Reset": str(int((now + 5) * 1000))}, now
    )
    assert (millis.reset_in, millis.reset_style) == (5, "epoch_ms")
    assert parse_budget({"X-RateLimit-Limit": "10"}, now) is None
    assert parse_budget({"X-RateLimit-Limit": "x", "X-RateLimit-Remaining": "1", "X-RateLimit-Reset": "1"}, now) is None


def test_retry_after_seconds_or_http_date():
    assert parse_retry_after({"Retry-After": "7"}) == 7
    now = 1_800_000_000.0
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(now + 20))
    assert parse_retry_after({"Retry-After": date}, now) == 20
    assert parse_retry_after({"Retry-After": date}, now + 30) == 0  # a date already past: go now
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({}) is None


async def test_shared_state_falls_back_to_the_worker_while_redis_is_down():
    from scrapy.statscollectors import MemoryStatsCollector
    from scrapy.utils.test import get_crawler

    from crawler.resilience.fallback import SharedOrLocal

    down = redis.asyncio.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)  # nothing listens
    stats = MemoryStatsCollector(get_crawler())
    buckets = SharedOrLocal(RedisBuckets(down, "test:"), LocalBuckets(clock=Clock()), stats, "ratelimit")
    waits = [(await buckets.reserve("k", 100, 1, f"t{i}", 60_000, 10_000))[1] for i in range(3)]
    assert waits == [0, 100, 200]  # still limited, by this worker alone
    assert stats.get_value("ratelimit/redis_errors") == 3
    await down.aclose()
