"""The pump (crawler/scheduling/pump.py) when Redis fails: the real Redis, failures injected in the
asyncio client (a pipeline whose ``execute`` raises, before or after Redis ran it)."""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace

import pytest
import redis
import redis.asyncio
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from scrapy import Request, Spider, signals
from scrapy.utils.test import get_crawler
from twisted.internet import defer

from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, REDIS_URL

pytestmark = pytest.mark.integration

DEADLINE = 30  # seconds: generous, for a busy machine; the conditions are waited on, never a fixed delay


class Flaky:
    """A redis.asyncio client whose pipelines fail while ``mode`` says so: "down" (nothing reaches
    Redis), "lost" (Redis runs the pipeline, its reply is lost: a timeout)."""

    def __init__(self, real):
        self.real, self.mode, self.failed = real, None, 0

    def pipeline(self, **kwargs):
        pipe, mode = self.real.pipeline(**kwargs), self.mode
        if mode is None:
            return pipe
        execute = pipe.execute

        async def failing(*args, **kw):
            self.failed += 1
            if mode == "down":
                raise RedisConnectionError("injected: connection refused")
            await execute(*args, **kw)
            raise RedisTimeoutError("injected: reply lost")

        pipe.execute = failing
        return pipe

    def __getattr__(self, name):
        return getattr(self.real, name)


class Unit(Spider):
    name = "pumptest"


async def until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.01)


@pytest.fixture
async def make(redis_prefix):
    """make(**settings) -> an open SharedScheduler on the real Redis (its own prefix), its client Flaky."""
    from scrapy_redis import picklecompat

    from crawler.scheduling.shared import SharedScheduler

    made = []

    async def build(**settings):
        crawler = get_crawler(
            Unit,
            {
                "REDIS_URL": REDIS_URL,
                "REDIS_KEY_PREFIX": f"{redis_prefix}{uuid.uuid4().hex[:6]}:",
                "SCHEDULER_KEY": "%(prefix)ssched:{%(job)s}",
                "SCHEDULER_LEASE_SECONDS": 30,
                "SCHEDULER_ACK_SECONDS": 0.05,
                "SCHEDULER_IDLE_CLOSE_SECONDS": 0,
                "SCHEDULER_POLL_MIN_SECONDS": 0.01,
                "SCHEDULER_POLL_MAX_SECONDS": 0.1,
                "SCHEDULER_PREFETCH": 4,
                "SCHEDULER_BLOOM_CAPACITY": 10_000,
                "SCHEDULER_BLOOM_ERROR_RATE": 0.001,
                "CRAWLER_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
                "CRAWLER_BLIND_INDEX_KEY": BLIND_INDEX_KEY,
                **settings,
            },
        )
        crawler.engine = SimpleNamespace(
            scraper=SimpleNamespace(enqueue_scrape=lambda result, request: defer.succeed(None))
        )
        server = redis.Redis.from_url(REDIS_URL)
        aio = Flaky(redis.asyncio.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=5))
        sched = SharedScheduler(server, crawler, aio=aio, serializer=picklecompat)
        spider = Unit()
        sched.open(spider)

        async def no_rows():  # no BulkWriter here
            return None

        sched._commit_rows = no_rows
        sched.dropped = []
        sched.on_dropped = lambda request, spider: sched.dropped.append(request.url)  # kept: receivers are weak
        crawler.signals.connect(sched.on_dropped, signals.request_dropped)
        made.append(sched)
        return sched

    yield build
    for sched in made:
        if not sched._stopping.done():
            sched.aio.mode = None
            await asyncio.wait_for(sched._close("finished"), DEADLINE)


def owned(sched) -> dict:
    return {k.decode(): v.decode() for k, v in sched.server.hgetall(sched.queue.keys["owners"]).items()}


async def leased_parent(sched) -> str:
    """A request leased by this worker and being scraped (its callback's children come next)."""
    sched.queue.push(Request("http://example.invalid/parent"))
    sched.pump.poll_soon()
    await until(lambda: sched.prefetched, "the parent was never prefetched")
    request = sched.next_request()
    lease = request.meta["_scheduler_lease"]
    sched.held[lease] = "scraping"
    sched.prefetch = 0  # pops no more: what the test queues stays in the queue for it to read
    return lease


async def test_redis_down_before_the_scripts_load_keeps_pushes_buffered_and_close_finishes(make):
    sched = await make()
    sched.aio.mode = "down"  # the first tick loads the scripts: that fails
    sched.enqueue_request(Request("http://example.invalid/a"))
    await until(lambda: sched.aio.failed >= 2, "the pump never retried")
    assert sched.pump.pending == 1 and not sched.local  # still buffered, not moved to memory
    started = time.monotonic()
    await asyncio.wait_for(sched._close("shutdown"), DEADLINE)  # bounded, though Redis never came back
    assert sched.pump.task.done()
    assert [r.url for _, _, r in sched.local] == ["http://example.invalid/a"]  # kept, logged, not dropped
    assert time.monotonic() - started < 15


async def test_a_transient_failure_retries_pushes_in_order_and_keeps_the_parent_leased(make):
    sched = await make()
    parent = await leased_parent(sched)
    sched.aio.mode = "down"
    for n in range(3):
        sched.enqueue_request(Request(f"http://example.invalid/child/{n}"))
    sched._finished(parent)  # the callback is done: its ack must wait for the children
    flush = asyncio.ensure_future(sched.flush_acks())
    await until(lambda: sched.aio.failed >= 3, "the pump never retried")
    assert not flush.done() and owned(sched) == {parent: sched.token}  # not acked while the children wait
    assert not sched.local
    sched.aio.mode = None
    assert await asyncio.wait_for(flush, DEADLINE) == 1
    assert owned(sched) == {}
    popped = sched.queue.pop_many(time.time(), 10)
    assert [request.url for _, request in popped] == [f"http://example.invalid/child/{n}" for n in range(3)]


async def test_a_lost_reply_is_retried_and_the_dupefilter_queues_the_request_once(make):
    sched = await make(SCHEDULER_PREFETCH=-1)  # pops nothing: the queue is read by the test
    await until(lambda: sched.pump.scripts_loaded, "the scripts never loaded")
    sched.aio.mode = "lost"
    sched.enqueue_request(Request("http://example.invalid/once"))
    await until(lambda: sched.aio.failed >= 1, "the push was never tried")
    sched.aio.mode = None
    await asyncio.wait_for(sched.pump.pushed(), DEADLINE)
    assert sched.queue.counts()["queued"] == 1  # Redis ran the first try; the retry was found seen
    assert sched.stats.get_value("dupefilter/filtered") == 1


async def test_redis_unreachable_longer_than_a_lease_keeps_pushes_in_memory_and_returns_the_parent(make):
    sched = await make(SCHEDULER_LEASE_SECONDS=0.5)
    parent = await leased_parent(sched)
    sched.aio.mode = "down"
    sched.enqueue_request(Request("http://example.invalid/child"))
    sched._finished(parent)
    flush = asyncio.ensure_future(sched.flush_acks())
    await until(lambda: sched.local, "never kept in memory")
    assert sched.stats.get_value("scheduler/spilled") == 1
    sched.aio.mode = None
    await until(lambda: flush.done() and not sched.to_ack, "the parent was never returned")
    assert owned(sched) == {}  # not acked: returned to the queue, so a crash now loses no child
    assert [request.url for _, request in sched.queue.pop_many(time.time(), 10)] == ["http://example.invalid/parent"]
    assert sched.stats.get_value("scheduler/leases/released") == 1
    assert not sched.stats.get_value("scheduler/leases/acked")


async def test_an_error_reading_the_replies_fails_the_acks_instead_of_hanging(make):
    sched = await make()
    await until(lambda: sched.pump.scripts_loaded, "the scripts never loaded")

    def broken(*args):
        raise ValueError("injected")

    sched.pump._pushed = broken  # the push's reply comes before the ack's
    ack = asyncio.get_running_loop().create_future()
    sched.pump.acks.append((["0000000000000001"], ack, False))  # in the same tick as the push, for sure
    sched.enqueue_request(Request("http://example.invalid/x"))
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(ack, DEADLINE)
    await asyncio.wait_for(sched.pump.pushed(), DEADLINE)


@pytest.mark.parametrize("bloom", ["false", "true"])
async def test_a_duplicate_is_queued_once_and_sent_with_request_dropped(make, bloom):
    sched = await make(SCHEDULER_DUPEFILTER_BLOOM=bloom, SCHEDULER_PREFETCH=-1)
    # two in one batch (the Bloom filter checks before the push), then one in a later tick
    assert sched.enqueue_request(Request("http://example.invalid/dup"))
    assert sched.enqueue_request(Request("http://example.invalid/dup"))
    await asyncio.wait_for(sched.pump.pushed(), DEADLINE)
    sched.enqueue_request(Request("http://example.invalid/dup"))
    await asyncio.wait_for(sched.pump.pushed(), DEADLINE)
    assert sched.queue.counts()["queued"] == 1
    assert sched.stats.get_value("dupefilter/filtered") == 2
    assert sched.dropped == ["http://example.invalid/dup"] * 2
