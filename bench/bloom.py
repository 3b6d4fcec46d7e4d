"""The Redis Bloom filter: memory, measured false-positive rate and speed, against an exact set.

    python bench/bloom.py [--count 10000000] [--probes 1000000] [--error-rate 0.001]
                          [--batch 5000] [--baseline-count 1000000]

Inserts --count distinct ids (batches of --batch, one atomic Lua call each),
reports Redis MEMORY USAGE of the filter (goal: <= 20 MiB for 10M ids at 0.1%),
then probes --probes ids never inserted and reports the measured false-positive
rate (goal <= 0.1%) and checks/s. Baseline in the same run: the same kind of ids
in a plain Redis SET (SADD, one pipelined round trip per batch) over
--baseline-count ids, its memory extrapolated per id. Cleans up its keys.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crawler.dedup.bloom import BloomFilter

MIB = 1024 * 1024


async def bloom_run(client, args, prefix: str) -> dict:
    bloom = BloomFilter(client, "bench", args.count, args.error_rate, prefix=prefix)
    bits, hashes = BloomFilter.size_for(args.count, args.error_rate)
    started, new = time.perf_counter(), 0
    for start in range(0, args.count, args.batch):
        ids = [f"evt-{n}" for n in range(start, min(start + args.batch, args.count))]
        new += sum(await bloom.check_and_add(ids))
        if start and start % (args.count // 10 or 1) < args.batch:
            print(f"  inserted {start:,}", flush=True)
    insert_seconds = time.perf_counter() - started
    memory = await bloom.memory_bytes()
    started, false_positives = time.perf_counter(), 0
    for start in range(0, args.probes, args.batch):
        ids = [f"unseen-{n}" for n in range(start, min(start + args.batch, args.probes))]
        false_positives += sum(await bloom.contains(ids))
    probe_seconds = time.perf_counter() - started
    layers = await bloom.layers()
    await bloom.clear()
    return {
        "bits": bits,
        "hashes": hashes,
        "layers": layers,
        "memory": memory,
        "new": new,
        "insert_rate": args.count / insert_seconds,
        "probe_rate": args.probes / probe_seconds,
        "fp_rate": false_positives / args.probes,
    }


async def exact_set_run(client, args, prefix: str) -> dict:
    key = f"{prefix}exact"
    started = time.perf_counter()
    for start in range(0, args.baseline_count, args.batch):
        async with client.pipeline(transaction=False) as pipe:
            pipe.sadd(key, *[f"evt-{n}" for n in range(start, min(start + args.batch, args.baseline_count))])
            await pipe.execute()
    rate = args.baseline_count / (time.perf_counter() - started)
    memory = await client.memory_usage(key, samples=0)
    await client.delete(key)
    return {"rate": rate, "memory_per_id": memory / args.baseline_count}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000_000)
    parser.add_argument("--probes", type=int, default=1_000_000)
    parser.add_argument("--error-rate", type=float, default=0.001)
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--baseline-count", type=int, default=1_000_000)
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    client = redis.asyncio.Redis.from_url(args.redis_url, socket_timeout=60)
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    try:
        print(f"Bloom filter: {args.count:,} ids at error rate {args.error_rate}", flush=True)
        bloom = await bloom_run(client, args, prefix)
        print(f"exact set baseline: {args.baseline_count:,} ids", flush=True)
        exact = await exact_set_run(client, args, prefix)
    finally:
        await client.aclose()
    exact_mib = exact["memory_per_id"] * args.count / MIB
    bloom_mib = bloom["memory"] / MIB
    print(
        f"  bits {bloom['bits']:,} ({bloom['bits'] / 8 / MIB:.1f} MiB), hashes {bloom['hashes']}, "
        f"layers {bloom['layers']}, reported new {bloom['new']:,}"
    )
    print(
        f"bloom: {args.count:,} ids, {bloom_mib:.2f} MiB ({bloom['memory']:,} bytes; goal <= 20 MiB), "
        f"fp {bloom['fp_rate'] * 100:.3f}% "
        f"(goal <= 0.1%), {bloom['insert_rate']:,.0f} inserts/s, {bloom['probe_rate']:,.0f} checks/s; "
        f"exact set: {exact_mib:,.0f} MiB per {args.count:,}, {exact['rate']:,.0f} adds/s; "
        f"memory ratio {bloom_mib / exact_mib:.3f}, speed ratio {bloom['insert_rate'] / exact['rate']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
