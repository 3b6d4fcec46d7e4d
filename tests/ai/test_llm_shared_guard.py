"""The guard shared by workers: budget and breaker through the real Redis, the answer cache in PostgreSQL.

Each "worker" is its own LLMClient made from the same settings, as two crawl processes would be.
"""

from __future__ import annotations

import uuid

import pytest
from scrapy.settings import Settings

from crawler.ai import LLMClient, LocalCache
from crawler.db.pool import close_pools
from support import REDIS_URL

pytestmark = pytest.mark.integration

SCHEMA = {"type": "object", "properties": {"selector": {"type": "string"}}, "required": ["selector"]}
RIGHT = {"content": {"selector": "dd.age"}}


def settings_for(stub, **values) -> Settings:
    settings = Settings()
    settings.setmodule("crawler.settings")
    settings.setdict({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": stub.url, **values})
    return settings


@pytest.fixture
def shared(stub, redis_prefix):
    """Settings of workers sharing one Redis key prefix of this test's own."""
    return lambda **values: settings_for(
        stub, REDIS_URL=REDIS_URL, REDIS_KEY_PREFIX=f"{redis_prefix}{uuid.uuid4().hex[:6]}:", **values
    )


async def ask(client, cache_key=None):
    return await client.complete_json("shared", "Answer in JSON.", "<h1>[NAME]</h1>", SCHEMA, cache_key)


async def test_the_hourly_budget_is_shared_by_workers(stub, shared, clock):
    settings = shared(HEAL_LLM_MAX_CALLS_PER_HOUR="3")
    one, two = (LLMClient.from_settings(settings, cache=LocalCache(), clock=clock) for _ in range(2))
    await stub.script(*[RIGHT] * 5)
    results = [await ask(one), await ask(two), await ask(one), await ask(two), await ask(one)]
    assert [r is not None for r in results] == [True, True, True, False, False]
    assert len(await stub.received()) == 3
    clock.advance(3_600_001)
    assert await ask(two) is not None
    for client in (one, two):
        await client.aclose()


async def test_the_daily_dollar_budget_is_shared_by_workers(stub, shared, clock):
    settings = shared(LLM_PRICE_INPUT_PER_MTOK="0", LLM_PRICE_OUTPUT_PER_MTOK="1000000", HEAL_LLM_MAX_USD_PER_DAY="1")
    one, two = (LLMClient.from_settings(settings, cache=LocalCache(), clock=clock) for _ in range(2))
    dollar = {**RIGHT, "usage": {"prompt_tokens": 10, "completion_tokens": 1}}  # $1 an answer
    await stub.script(dollar, dollar)
    assert await ask(one) is not None
    assert await ask(two) is None  # the day's dollar went on the other worker's call
    assert len(await stub.received()) == 1
    for client in (one, two):
        await client.aclose()


async def test_a_breaker_opened_by_one_worker_holds_the_other(stub, shared, clock):
    settings = shared(LLM_BREAKER_FAILURES="2", LLM_BREAKER_COOLDOWN_SECONDS="60")
    one, two = (LLMClient.from_settings(settings, cache=LocalCache(), clock=clock) for _ in range(2))
    await stub.script({"status": 500}, {"status": 502}, RIGHT, RIGHT)
    assert await ask(one) is None and await ask(one) is None
    assert await ask(two) is None  # open: not sent
    assert len(await stub.received()) == 2
    clock.advance(61_000)
    assert await ask(two) is not None  # the probe, from the other worker
    assert await ask(one) is not None
    for client in (one, two):
        await client.aclose()


async def test_answers_cached_in_postgresql_serve_another_worker_and_a_later_run(stub, database_url, db, clock):
    settings = settings_for(stub, DATABASE_URL=database_url)
    key = f"structure-{uuid.uuid4().hex}"
    await stub.script(RIGHT, RIGHT)
    first = LLMClient.from_settings(settings, clock=clock)
    assert (await ask(first, cache_key=key)).cached is False
    await first.aclose()
    later = LLMClient.from_settings(settings, clock=clock)
    again = await ask(later, cache_key=key)
    assert again is not None and again.cached and again.data == RIGHT["content"]
    assert len(await stub.received()) == 1
    row = db.execute("SELECT model, answer, hits FROM llm_cache WHERE cache_key = %s", (key,)).fetchone()
    assert row == ("gpt-4o-mini", RIGHT["content"], 1)
    await later.forget("shared", key)
    assert db.execute("SELECT count(*) FROM llm_cache WHERE cache_key = %s", (key,)).fetchone()[0] == 0
    assert (await ask(later, cache_key=key)).cached is False
    await later.aclose()
    await close_pools()


async def test_an_unreachable_cache_is_a_miss_not_an_error(stub, clock, caplog):
    settings = settings_for(stub, DATABASE_URL="postgresql://postgres@127.0.0.1:9/none", PG_CONNECT_TIMEOUT="1")
    client = LLMClient.from_settings(settings, clock=clock)
    await stub.script(RIGHT, RIGHT)
    assert (await ask(client, cache_key="k")).cached is False
    assert (await ask(client, cache_key="k")).cached is False
    assert caplog.text.count("LLM answer cache unavailable") == 1
    await client.aclose()
    await close_pools()
