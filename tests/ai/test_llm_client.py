"""LLMClient against the sandbox's scripted OpenAI-compatible double, over real HTTP.

Budget, breaker and cache in process here (an injected clock moves time); shared through Redis and
PostgreSQL in test_llm_shared_guard.py. What reached the double is read back from it, so "nothing
was sent" is checked where it matters: at the server.
"""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from crawler.ai import LLM_METRICS, LLMClient, LocalCache
from crawler.observability.logs import register_pii

pytestmark = pytest.mark.unit

KEY = "sk-test-not-a-real-key-8f3a"

SCHEMA = {
    "type": "object",
    "properties": {"selector": {"type": "string"}, "confidence": {"type": "number"}},
    "required": ["selector"],
}
RIGHT = {"content": {"selector": "h1.fullname", "confidence": 0.9}}
SYSTEM = "You write CSS selectors. Answer in JSON."
PAGE = '<div class="card"><h1 class="fullname">[NAME]</h1><span>Age [NUMBER]</span></div>'


def make_client(stub, clock, **settings) -> LLMClient:
    values = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": stub.url, "LLM_TIMEOUT_SECONDS": "5", **settings}
    client = LLMClient.from_settings(values, cache=LocalCache(), clock=clock)
    assert client is not None
    return client


async def ask(client, purpose="test", cache_key=None, user=PAGE):
    return await client.complete_json(purpose, SYSTEM, user, SCHEMA, cache_key=cache_key)


async def test_a_right_answer_is_parsed_with_its_usage_and_cost(stub, clock):
    client = make_client(stub, clock, LLM_PRICE_INPUT_PER_MTOK="2", LLM_PRICE_OUTPUT_PER_MTOK="8")
    await stub.script({**RIGHT, "usage": {"prompt_tokens": 1000, "completion_tokens": 500}})
    before = LLM_METRICS.calls[("right", "ok")], LLM_METRICS.tokens["prompt"], LLM_METRICS.cost_usd
    answer = await ask(client, purpose="right")
    assert answer is not None and answer.data == RIGHT["content"] and not answer.cached
    assert (answer.prompt_tokens, answer.completion_tokens, answer.total_tokens) == (1000, 500, 1500)
    assert answer.cost_usd == pytest.approx((1000 * 2 + 500 * 8) / 1e6)
    assert answer.model == "gpt-4o-mini"
    (sent,) = await stub.received()
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PAGE}]
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["schema"] == SCHEMA
    assert LLM_METRICS.calls[("right", "ok")] == before[0] + 1
    assert LLM_METRICS.tokens["prompt"] == before[1] + 1000
    assert LLM_METRICS.cost_usd == pytest.approx(before[2] + answer.cost_usd)
    registry = CollectorRegistry()
    registry.register(LLM_METRICS)
    exposition = generate_latest(registry).decode()
    assert 'crawler_llm_calls_total{outcome="ok",purpose="right"}' in exposition
    assert "crawler_llm_cost_usd_total" in exposition
    assert 'crawler_llm_tokens_total{kind="completion"}' in exposition
    await client.aclose()


@pytest.mark.parametrize(
    "scripted, outcome",
    [
        ({"malformed": True}, "malformed"),
        ({"content": {"selector": 5}}, "invalid"),  # JSON, but not what the schema asks
        ({"content": ["h1"]}, "invalid"),
        ({"content": '```json\n{"confidence": 1}\n```'}, "invalid"),
        ({"status": 400}, "error"),
    ],
)
async def test_a_bad_answer_is_none_with_one_log_line_and_no_content(stub, clock, caplog, scripted, outcome):
    client = make_client(stub, clock)
    await stub.script(scripted)
    before = LLM_METRICS.calls[(f"bad-{outcome}", outcome)]
    with caplog.at_level(logging.INFO, logger="crawler.ai"):
        assert await ask(client, purpose=f"bad-{outcome}") is None
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("crawler.ai")]
    assert len(lines) == 1 and outcome in lines[0]
    assert "[NAME]" not in lines[0] and "h1" not in lines[0] and KEY not in caplog.text
    assert LLM_METRICS.calls[(f"bad-{outcome}", outcome)] == before + 1
    await client.aclose()


async def test_a_json_answer_in_a_markdown_fence_is_accepted(stub, clock):
    client = make_client(stub, clock)
    await stub.script({"content": '```json\n{"selector": "dd.age"}\n```'})
    answer = await ask(client)
    assert answer is not None and answer.data == {"selector": "dd.age"}
    await client.aclose()


async def test_an_answer_slower_than_the_timeout_is_none(stub, clock):
    client = make_client(stub, clock, LLM_TIMEOUT_SECONDS="0.3")
    await stub.script({"slow": 1.5, **RIGHT}, RIGHT)
    assert await ask(client, purpose="slow") is None
    assert LLM_METRICS.calls[("slow", "timeout")] == 1
    answer = await ask(client, purpose="slow")  # the next call is not held up
    assert answer is not None and answer.data == RIGHT["content"]
    await client.aclose()


async def test_failures_open_the_breaker_then_one_probe_closes_it(stub, clock):
    client = make_client(stub, clock, LLM_BREAKER_FAILURES="3", LLM_BREAKER_COOLDOWN_SECONDS="60")
    await stub.script(*[{"status": 500}, {"status": 503}, {"status": 429, "retry_after": 1}], RIGHT, RIGHT, RIGHT)
    outcomes = [await ask(client, purpose="breaker") for _ in range(6)]
    assert outcomes == [None] * 6
    assert len(await stub.received()) == 3  # the last three never left the process
    assert LLM_METRICS.calls[("breaker", "error")] == 3
    assert LLM_METRICS.calls[("breaker", "breaker_open")] == 3
    clock.advance(59_000)
    assert await ask(client, purpose="breaker") is None  # still cooling down
    assert len(await stub.received()) == 3
    clock.advance(2_000)
    probe = await ask(client, purpose="breaker")  # the probe
    assert probe is not None and probe.data == RIGHT["content"]
    assert (await ask(client, purpose="breaker")) is not None  # closed again
    assert len(await stub.received()) == 5
    await client.aclose()


async def test_a_failed_probe_reopens_the_breaker(stub, clock):
    client = make_client(stub, clock, LLM_BREAKER_FAILURES="2", LLM_BREAKER_COOLDOWN_SECONDS="60")
    await stub.script({"status": 500}, {"status": 500}, {"status": 500}, RIGHT)
    for _ in range(2):
        assert await ask(client) is None
    clock.advance(61_000)
    assert await ask(client) is None  # the probe fails
    assert await ask(client) is None  # open again: not sent
    assert len(await stub.received()) == 3
    await client.aclose()


async def test_the_hourly_call_budget_stops_the_call_after_the_last_allowed(stub, clock):
    client = make_client(stub, clock, HEAL_LLM_MAX_CALLS_PER_HOUR="2")
    await stub.script(RIGHT, {"status": 500}, RIGHT, RIGHT)
    assert await ask(client, purpose="hourly") is not None
    clock.advance(30 * 60_000)
    assert await ask(client, purpose="hourly") is None  # a failed call counts too
    clock.advance(10 * 60_000)
    assert await ask(client, purpose="hourly") is None  # refused: two calls in this hour
    assert len(await stub.received()) == 2
    assert LLM_METRICS.calls[("hourly", "budget_calls")] == 1
    clock.advance(20 * 60_000 + 1)  # the first call has left the sliding hour, the second not
    assert await ask(client, purpose="hourly") is not None
    assert await ask(client, purpose="hourly") is None
    assert len(await stub.received()) == 3
    await client.aclose()


async def test_the_daily_dollar_budget_stops_calls_once_spent(stub, clock):
    # $0.10 a completion token, 4 tokens an answer: $0.40 a call against $1.00 a day
    client = make_client(
        stub, clock, LLM_PRICE_INPUT_PER_MTOK="0", LLM_PRICE_OUTPUT_PER_MTOK="100000", HEAL_LLM_MAX_USD_PER_DAY="1"
    )
    costly = {**RIGHT, "usage": {"prompt_tokens": 100, "completion_tokens": 4}}
    await stub.script(costly, costly, costly, costly)
    answers = [await ask(client, purpose="daily") for _ in range(4)]
    assert [a is not None for a in answers] == [True, True, True, False]  # $1.20 spent after the third
    assert answers[0].cost_usd == pytest.approx(0.4)
    assert len(await stub.received()) == 3
    assert LLM_METRICS.calls[("daily", "budget_usd")] == 1
    clock.advance(86_400_000)  # the next UTC day
    assert await ask(client, purpose="daily") is not None
    await client.aclose()


async def test_a_cache_hit_sends_nothing_and_costs_no_budget(stub, clock):
    client = make_client(stub, clock, HEAL_LLM_MAX_CALLS_PER_HOUR="1")
    await stub.script(RIGHT, RIGHT)
    first = await ask(client, purpose="cached", cache_key="page-hash-1")
    again = await ask(client, purpose="cached", cache_key="page-hash-1")
    assert first is not None and not first.cached
    assert again is not None and again.cached and again.data == first.data and again.cost_usd == 0
    assert len(await stub.received()) == 1
    # another purpose or key is another question; the budget (1 an hour) refuses it
    assert await ask(client, purpose="other", cache_key="page-hash-1") is None
    assert len(await stub.received()) == 1
    await client.forget("cached", "page-hash-1")
    clock.advance(3_600_001)
    assert (await ask(client, purpose="cached", cache_key="page-hash-1")).cached is False
    assert len(await stub.received()) == 2
    await client.aclose()


async def test_an_invalid_answer_is_not_cached(stub, clock):
    client = make_client(stub, clock)
    await stub.script({"content": {"confidence": 1}}, RIGHT)
    assert await ask(client, cache_key="k") is None
    answer = await ask(client, cache_key="k")
    assert answer is not None and not answer.cached
    assert len(await stub.received()) == 2
    await client.aclose()


async def test_no_key_means_no_client_and_one_log_line(caplog, said_nothing_yet):
    with caplog.at_level(logging.INFO, logger="crawler.ai"):
        assert LLMClient.from_settings({}) is None
        assert LLMClient.from_settings({"OPENAI_API_KEY": "  ", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}) is None
    lines = [r for r in caplog.records if r.name.startswith("crawler.ai")]
    assert len(lines) == 1 and lines[0].levelno == logging.INFO
    assert "heuristic" in lines[0].getMessage()


@pytest.mark.parametrize(
    "user, kind",
    [
        ("<td>write to jane.roe@example.org</td>", "e-mail"),
        ("<td>(217) 555-0142</td>", "phone"),
        ("<td>2175550142</td>", "phone"),
        ("<h1>Zebulon Quackenbush</h1>", "registered"),
        ("<h1>QUACKENBUSH, ZEBULON</h1>", "registered"),
    ],
)
async def test_text_holding_personal_data_is_refused_and_nothing_is_sent(stub, clock, caplog, user, kind):
    register_pii("Zebulon Quackenbush")  # as a scan registers its target
    client = make_client(stub, clock)
    await stub.script(RIGHT)
    with caplog.at_level(logging.INFO, logger="crawler.ai"):
        assert await ask(client, purpose="refused", user=user) is None
    assert await stub.received() == []
    assert kind in caplog.text and "Zebulon" not in caplog.text and "555" not in caplog.text
    await client.aclose()


async def test_masked_text_with_a_registered_word_in_lower_case_markup_is_sent(stub, clock):
    # class names and lower-case words are markup, not a written name: no false refusal
    register_pii("Zebulon Quackenbush")
    client = make_client(stub, clock)
    await stub.script(RIGHT)
    assert await ask(client, user='<div class="zebulon-card">[NAME]</div>') is not None
    await client.aclose()


async def test_an_unreachable_server_is_a_breaker_failure(clock):
    client = LLMClient.from_settings(
        {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "LLM_BREAKER_FAILURES": "1"},
        cache=LocalCache(),
        clock=clock,
    )
    assert await ask(client, purpose="unreachable") is None
    assert await ask(client, purpose="unreachable") is None
    assert LLM_METRICS.calls[("unreachable", "error")] == 1
    assert LLM_METRICS.calls[("unreachable", "breaker_open")] == 1
    await client.aclose()


def test_one_client_per_crawler_and_none_without_a_key(said_nothing_yet):
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    crawler = get_crawler(Spider, {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    client = LLMClient.from_crawler(crawler)
    assert isinstance(client, LLMClient) and LLMClient.from_crawler(crawler) is client
    assert LLMClient.from_crawler(get_crawler(Spider, {"OPENAI_API_KEY": ""})) is None


@pytest.mark.parametrize(
    "user, sent",
    [
        ("<th>City</th><td>[CITY_STATE]</td>", True),  # "City" of the registered "Kansas City" is a label here
        ("<h1>[NAME] Page</h1>", False),  # the registered surname "Page" beside a name
        ("<h1>PAGE, [NAME]</h1>", False),
        ("<a>Next Page</a>", True),
    ],
)
async def test_registered_label_words_count_only_as_part_of_a_name(stub, clock, user, sent):
    register_pii("Hortensia Page", "Kansas City")
    client = make_client(stub, clock)
    await stub.script(RIGHT)
    assert (await ask(client, purpose="label-words", user=user) is not None) is sent
    assert len(await stub.received()) == int(sent)
    await client.aclose()


async def test_an_unreachable_shared_budget_sends_nothing(stub, clock):
    # with REDIS_URL set the budget lives there: unreadable, nothing may be spent
    client = make_client(stub, clock, REDIS_URL="redis://127.0.0.1:9/0", REDIS_CONNECT_TIMEOUT="1")
    await stub.script(RIGHT)
    before = LLM_METRICS.calls[("redis-down", "guard_error")]
    assert await ask(client, purpose="redis-down") is None
    assert LLM_METRICS.calls[("redis-down", "guard_error")] == before + 1
    assert await stub.received() == []
    await client.aclose()
