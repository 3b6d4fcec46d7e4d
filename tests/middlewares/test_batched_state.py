"""Fewer Redis round trips, same guarantees: batched rate-limit slots and the closed-circuit cache.

The bucket tests run on a test clock (exact waits); the circuit tests run two real
middlewares on one Redis and wait on conditions with generous deadlines.
"""

import asyncio
import itertools
import time
import uuid
from types import SimpleNamespace

import pytest
import redis.asyncio
from scrapy import Request, Spider
from scrapy.http import HtmlResponse
from scrapy.utils.project import get_project_settings
from scrapy.utils.test import get_crawler

from crawler.resilience.buckets import LocalBuckets, RedisBuckets
from crawler.resilience.circuits import WAIT
from middlewares.circuit_breaker import PROBE_META, CircuitBreakerMiddleware
from support import REDIS_URL, Clock

pytestmark = pytest.mark.integration


@pytest.fixture
async def workers(redis_prefix):
    """make(batch=, batch_ms=): a RedisBuckets of its own client on this test's prefix."""
    prefix, clients = f"{redis_prefix}{uuid.uuid4().hex[:6]}:", []

    def make(clock, batch=16, batch_ms=50.0):
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        clients.append(client)
        return RedisBuckets(client, prefix, clock=clock, batch=batch, batch_ms=batch_ms)

    yield make
    for client in clients:
        await client.aclose()


async def in_flight(buckets: RedisBuckets, key: str = "k") -> int:
    await buckets.flush()
    return await buckets.redis.zcard(buckets._keys(key)[1])


async def test_one_round_trip_reserves_the_slots_due_within_the_batch_time(workers, clock):
    b = workers(clock)
    calls = 0
    script = b._reserve_batch

    async def counted(*args, **kwargs):
        nonlocal calls
        calls += 1
        return await script(*args, **kwargs)

    b._reserve_batch = counted
    slots = [await b.take("k", 10, 1, 60_000, 1000) for _ in range(6)]
    assert [s.wait_ms for s in slots] == [0, 10, 20, 30, 40, 50]  # 0..50 ms ahead: one batch
    assert calls == 1 and len({s.token for s in slots}) == 6
    assert await in_flight(b) == 6  # held slots are leased like requests on their way
    assert (await b.take("k", 10, 1, 60_000, 1000)).wait_ms == 60
    assert calls == 2


async def test_a_slow_key_still_takes_one_slot_per_round_trip(workers, clock):
    b = workers(clock)
    assert (await b.take("k", 1000, 1, 60_000, 1000)).wait_ms == 0
    assert await in_flight(b) == 1
    slot = await b.take("k", 1000, 1, 60_000, 1000)
    assert (slot.reserved, slot.wait_ms) == (True, 1000)
    assert not (await b.take("k", 1000, 1, 60_000, 1000)).reserved  # 2 s ahead: beyond max_wait


async def test_two_batching_workers_never_exceed_a_published_budget(workers, clock):
    first, second = workers(clock), workers(clock)
    start = clock.now
    # the server: 20 requests left in the 1 s still open; both workers learn it from one response
    adapted = await first.adapt("k", remaining=20, time_left_ms=1000, steady_ms=50, margin_ms=0, window_ms=1000)
    assert adapted.interval_ms == 50
    due: list[float] = []
    while clock.now - start < 1.0:
        for worker in (first, second, first):
            slot = await worker.take("k", 1, 1, 60_000, 1000)  # a 1 ms default rate: the budget's 50 ms wins
            if slot.reserved:
                due.append(clock.now + slot.wait_ms / 1000 - start)
        clock.advance(7)
    in_window = sorted(t for t in due if t < 1.0)
    assert len(in_window) <= 20, in_window
    assert len(in_window) >= 18  # and the budget is used
    assert all(b - a >= 0.05 - 1e-6 for a, b in itertools.pairwise(in_window))


async def test_held_slots_count_against_the_budget(workers, clock):
    first, second = workers(clock), workers(clock)
    await first.take("k", 10, 1, 60_000, 1000)  # one used, five held by the first worker
    adapted = await second.adapt("k", remaining=10, time_left_ms=1000, steady_ms=100, margin_ms=0, window_ms=1000)
    assert adapted.available == 4


async def test_a_late_held_slot_is_given_back_not_used(workers, clock):
    b = workers(clock, batch_ms=50)
    first = await b.take("k", 10, 1, 60_000, 1000)
    assert await in_flight(b) == 6
    clock.advance(200)  # every held slot is now over 50 ms late
    slot = await b.take("k", 10, 1, 60_000, 1000)
    assert slot.wait_ms == 0 and slot.token.endswith(":1")  # a new batch, starting now
    await b.release("k", first.token)
    assert await in_flight(b) == 6  # the late five and the answered one gone, the new batch of six leased


async def test_a_pause_drops_the_held_slots(workers, clock):
    b = workers(clock)
    await b.take("k", 10, 1, 60_000, 5000)
    assert await b.pause("k", 2000)
    slot = await b.take("k", 10, 1, 60_000, 5000)
    assert slot.wait_ms == 2000  # no held slot went before the pause's end
    assert await in_flight(b) == 2  # the five held were given back: the used one and the new one remain


async def test_a_new_rate_for_the_key_drops_the_held_slots(workers, clock):
    b = workers(clock)
    await b.take("k", 10, 1, 60_000, 5000)
    slot = await b.take("k", 100, 1, 60_000, 5000)
    assert slot.wait_ms == 60  # after the six reserved at 10 ms, not one of them


async def test_close_gives_everything_back(workers, clock):
    b = workers(clock)
    used = await b.take("k", 10, 1, 60_000, 1000)
    await b.release("k", used.token)
    await b.close()
    assert await b.redis.zcard(b._keys("k")[1]) == 0


async def test_local_take_is_reserve_with_its_own_tokens():
    b = LocalBuckets(clock=Clock())
    slots = [await b.take("k", 100, 1, 60_000, 150) for _ in range(3)]
    assert [(s.reserved, s.wait_ms) for s in slots] == [(True, 0), (True, 100), (False, 200)]
    assert slots[0].token != slots[1].token and slots[2].token == ""


# ---- circuit breaker: a cached closed circuit still opens, and one probe goes among workers ----------


class Site(Spider):
    name = "site"


def circuit_breaker(prefix: str, **settings) -> CircuitBreakerMiddleware:
    project = {k: v for k, v in get_project_settings().items() if k.startswith("CIRCUIT_")}
    crawler = get_crawler(
        Site,
        {
            **project,
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": prefix,
            "REDIS_CONNECT_TIMEOUT": 10,
            "CIRCUIT_FAILURE_THRESHOLD": 2,
            "CIRCUIT_RESET_SECONDS": 0.3,
            "CIRCUIT_CLOSED_CACHE_SECONDS": 0.2,
            **settings,
        },
    )
    crawler.spider = crawler._create_spider()
    crawler.stats.open_spider()
    # as under the project's scheduler: a request that must wait comes back as a deferred copy
    crawler.engine = SimpleNamespace(_slot=SimpleNamespace(scheduler=SimpleNamespace(supports_deferral=True)))
    return CircuitBreakerMiddleware.from_crawler(crawler)


async def until(condition, seconds: float = 15.0):
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_cached_closed_circuit_still_opens_and_lets_one_probe_through(redis_prefix):
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:6]}:"
    first, second = circuit_breaker(prefix), circuit_breaker(prefix)
    url, domain = "http://site.example/page", "site.example"
    try:
        for worker in (first, second):  # both know the circuit closed, without asking Redis again
            assert await worker.process_request(Request(url)) is None
            assert worker.known_closed[domain] > time.monotonic()
        for _ in range(2):  # the first worker's failures open it; its own cache is forgotten at once
            request = Request(url)
            await first.process_request(request)
            await first.process_response(request, HtmlResponse(url, status=503, request=request))
        assert first.stats.get_value("circuit/opened") == 1
        assert domain not in first.known_closed

        async def second_asks_redis_again():
            return second.known_closed[domain] <= time.monotonic()

        await until(second_asks_redis_again)  # at most CIRCUIT_CLOSED_CACHE_SECONDS late
        assert (await second.circuits.gate(domain, "early")).decision == WAIT

        # both workers keep sending; after the cool-down exactly one request becomes the probe
        probes, deferred = [], 0

        async def a_probe_went():
            nonlocal deferred
            batch = [(worker, Request(url)) for worker in (first, second) * 3]
            answers = await asyncio.gather(*(worker.process_request(request) for worker, request in batch))
            for (worker, request), answer in zip(batch, answers, strict=True):
                if answer is None:
                    assert PROBE_META in request.meta  # nothing passes an open circuit but the probe
                    probes.append((worker, request))
                else:
                    deferred += 1
            return bool(probes)

        await until(a_probe_went)
        for _ in range(5):  # and no second one while the probe is out
            await a_probe_went()
        assert len(probes) == 1 and deferred >= 5 * 6
        owner, probe = probes[0]
        await owner.process_response(probe, HtmlResponse(url, status=200, request=probe))
        assert owner.stats.get_value("circuit/closed") == 1
        other = second if owner is first else first
        assert await other.process_request(Request(url)) is None  # closed for every worker
    finally:
        for worker in (first, second):
            await worker.crawler._shared_redis.aclose()


async def test_requests_arriving_while_the_gate_is_asked_share_its_answer(redis_prefix):
    worker = circuit_breaker(f"{redis_prefix}{uuid.uuid4().hex[:6]}:")
    shared = worker.circuits.shared
    asked = 0
    gate = shared.gate

    async def counted(domain, token):
        nonlocal asked
        asked += 1
        return await gate(domain, token)

    shared.gate = counted
    try:
        requests = [Request(f"http://site.example/{n}") for n in range(10)]
        assert await asyncio.gather(*map(worker.process_request, requests)) == [None] * 10
        assert asked == 1  # one round trip for the ten, then the cache
        worker.known_closed.clear()
        other = Request("http://other.example/")
        assert await worker.process_request(other) is None
        assert asked == 2  # per domain
    finally:
        await worker.crawler._shared_redis.aclose()


async def test_answered_leases_go_back_with_the_next_reservation(workers, clock):
    b = workers(clock, batch=1)
    first = await b.take("k", 10, 1, 60_000, 1000)
    await b.release("k", first.token)
    await b.take("k", 10, 1, 60_000, 1000)  # its script gives the answered lease back: no flush needed
    assert await b.redis.zcard(b._keys("k")[1]) == 1
    assert b._releases == {}


# ---- held slots and the other workers: a pause or a server budget reaches them before they send ----


async def sent(worker: RedisBuckets, clock: Clock, interval_ms=10, max_wait_ms=5000):
    """What the middleware does: take a slot, wait for it (on the test clock), confirm a held one."""
    while True:
        slot = await worker.take("k", interval_ms, 1, 60_000, max_wait_ms)
        assert slot.reserved
        clock.advance(slot.wait_ms)
        if await worker.confirm("k", slot):
            return clock.now, slot


async def test_a_pause_by_another_worker_stops_the_held_slots(workers, clock):
    first, second = workers(clock), workers(clock)
    start = clock.now
    await sent(first, clock)  # the first worker holds five more slots, 10..50 ms ahead
    assert len(first._held["k"].slots) == 5
    clock.advance(1)
    assert await second.pause("k", 2000)  # e.g. its response was a 429 with Retry-After: 2
    paused_at = clock.now
    at, slot = await sent(first, clock)
    assert not slot.held and at >= paused_at + 2.0  # no held slot went: the next one is after the pause
    assert "k" not in first._held or not first._held["k"].slots
    assert await in_flight(first) == 2  # the five held were given back
    assert at - start < 2.1


async def test_a_budget_learned_by_another_worker_stops_the_held_slots(workers, clock):
    first, second = workers(clock), workers(clock)
    await sent(first, clock, interval_ms=1)  # 1 ms default rate: sixteen slots held within 50 ms
    clock.advance(1)
    # the server allows 30 more in the second left, the sixteen held counting as in flight
    adapted = await second.adapt("k", remaining=30, time_left_ms=1000, steady_ms=200, margin_ms=0, window_ms=1000)
    clock.advance(first.CONFIRM_MS)  # held slots go at most this long after the budget was learned
    times = [(await sent(first, clock, interval_ms=1))[0] for _ in range(3)]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # the held 1-ms slots were not used: the requests are spaced at the learned interval
    assert all(gap * 1000 >= adapted.interval_ms - 1e-3 for gap in gaps), (adapted, gaps)
    assert not first._held.get("k") or not first._held["k"].slots  # and the key no longer batches


async def test_held_slots_go_without_a_round_trip_while_confirmed_recently(workers, clock):
    b = workers(clock, batch_ms=50)
    asked = 0
    hexists = b.redis.hexists

    async def counted(*args):
        nonlocal asked
        asked += 1
        return await hexists(*args)

    b.redis.hexists = counted
    await sent(b, clock, interval_ms=1)
    for _ in range(4):  # due within CONFIRM_MS of the batch: no question asked
        await sent(b, clock, interval_ms=1)
    assert asked == 0
    clock.advance(b.CONFIRM_MS + 1)
    await sent(b, clock, interval_ms=1)  # later: Redis is asked once, and the answer covers the next ones
    await sent(b, clock, interval_ms=1)
    assert asked == 1


async def test_a_held_slot_late_by_over_half_an_interval_is_dropped(workers, clock):
    b = workers(clock, batch_ms=50)
    await b.take("k", 10, 1, 60_000, 1000)  # held: 10, 20, 30, 40, 50 ms
    clock.advance(16)  # the 10 ms slot is 6 ms late: used now it would be 4 ms before the next one
    slot = await b.take("k", 10, 1, 60_000, 1000)
    assert slot.held and slot.token.endswith(":3") and slot.wait_ms == 4
    clock.advance(4 + 4)  # 4 ms late (under half the interval): still used
    assert (await b.take("k", 10, 1, 60_000, 1000)).token.endswith(":4")
