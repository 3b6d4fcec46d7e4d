"""Bloom filters on real Redis and in process: new vs seen, atomicity, sizing, growth."""

import asyncio
import uuid

import pytest
import redis.asyncio

from crawler.dedup.blocked_bloom import BlockedBloomFilter, blocked_size_for
from crawler.dedup.bloom import BloomFilter, LocalBloomFilter, size_for
from support import REDIS_URL


@pytest.fixture
async def make_filter():
    clients, prefix = [], f"test:{uuid.uuid4().hex[:8]}:"

    def make(kind: str, capacity: int = 10_000, error_rate: float = 0.01, name: str = "f"):
        if kind == "local":
            return LocalBloomFilter(name, capacity, error_rate)
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        clients.append(client)
        cls = BlockedBloomFilter if kind == "blocked" else BloomFilter
        return cls(client, name, capacity, error_rate, prefix=prefix)

    yield make
    for client in clients:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


KINDS = ["redis", "blocked", "local"]
# a register-blocked filter at full capacity: several times the configured rate (see blocked_bloom.py)
FP_FACTOR = {"redis": 2, "blocked": 8, "local": 2}


@pytest.mark.parametrize("kind", KINDS)
async def test_new_then_seen_across_and_within_batches(make_filter, kind):
    bloom = make_filter(kind)
    assert await bloom.check_and_add(["a", "b", "a", "c"]) == [True, True, False, True]
    assert await bloom.check_and_add(["b", "d"]) == [False, True]
    assert await bloom.contains(["a", "zzz"]) == [True, False]
    assert await bloom.check_and_add([]) == []


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["redis", "blocked"])
async def test_concurrent_workers_never_both_accept_an_id(make_filter, kind):
    first, second = make_filter(kind, 50_000), make_filter(kind, 50_000)
    second.redis = redis.asyncio.Redis.from_url(REDIS_URL)  # a second connection, as another worker
    ids = [f"id-{n}" for n in range(20_000)]

    async def worker(bloom, chunk):
        accepted = []
        for start in range(0, len(chunk), 1000):
            part = chunk[start : start + 1000]
            accepted += [i for i, new in zip(part, await bloom.check_and_add(part), strict=True) if new]
        return accepted

    a, b = await asyncio.gather(worker(first, ids), worker(second, ids[::-1]))
    await second.redis.aclose()
    assert not set(a) & set(b)
    assert len(a) + len(b) >= len(ids) * (1 - 0.001 * FP_FACTOR[kind])  # a few false positives at most


def test_blocked_filter_takes_the_classic_memory_and_fewer_bits_per_id():
    words, hashes = blocked_size_for(10_000_000, 0.001)
    assert words * 53 >= size_for(10_000_000, 0.001)[0] and words * 53 / 8 / 2**20 < 20
    assert hashes == 6


def test_sizing_follows_the_optimal_formulas():
    bits, hashes = size_for(10_000_000, 0.001)
    assert 143_700_000 < bits < 143_800_000 and hashes == 10
    assert bits / 8 / 2**20 < 20  # 10M ids at 0.1% fit in 20 MiB
    for capacity, rate in ((0, 0.1), (10, 0), (10, 1)):
        with pytest.raises(ValueError):
            size_for(capacity, rate)


@pytest.mark.parametrize("kind", KINDS)
async def test_measured_false_positive_rate_and_memory(make_filter, kind):
    bloom = make_filter(kind, capacity=20_000, error_rate=0.01)
    await bloom.check_and_add([f"in-{n}" for n in range(20_000)])
    probes = [f"out-{n}" for n in range(20_000)]
    rate = sum(await bloom.contains(probes)) / len(probes)
    assert rate <= 0.01 * FP_FACTOR[kind]
    assert await bloom.memory_bytes() <= size_for(20_000, 0.01)[0] / 8 * 1.1 + 4096


@pytest.mark.parametrize("kind", KINDS)
async def test_growth_keeps_old_ids_and_bounds_errors(make_filter, kind):
    bloom = make_filter(kind, capacity=2_000, error_rate=0.01)
    ids = [f"g-{n}" for n in range(6_000)]
    for start in range(0, len(ids), 500):
        await bloom.check_and_add(ids[start : start + 500])
    assert await bloom.layers() >= 2
    assert all(await bloom.contains(ids[:2000]))
    rate = sum(await bloom.contains([f"no-{n}" for n in range(10_000)])) / 10_000
    assert rate <= 0.01 * (FP_FACTOR[kind] + 1)  # below 2 x the configured rate (classic), plus sampling noise
