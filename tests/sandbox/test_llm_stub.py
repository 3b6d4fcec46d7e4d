"""The sandbox's OpenAI-compatible test double (sandbox/llm.py) over real HTTP, in process.

It answers only what a test scripted, in order, and records every request body it received.
"""

from __future__ import annotations

import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox.llm import make_app
from sandbox.server import SERVICES, build_app

pytestmark = pytest.mark.unit

AUTH = {"Authorization": "Bearer sk-test"}
REQUEST = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "<div>x</div>"}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": {"type": "object"}}},
}


@pytest.fixture
async def stub():
    async with TestClient(TestServer(make_app({}))) as client:
        yield client


async def script(stub, *answers) -> None:
    reply = await stub.post("/_sandbox/llm/script", json={"answers": list(answers)})
    assert reply.status == 200


async def ask(stub, headers=AUTH, body=REQUEST):
    reply = await stub.post("/v1/chat/completions", json=body, headers=headers)
    return reply.status, await reply.json(), reply.headers


async def test_a_scripted_object_comes_back_as_json_text_in_the_openai_shape(stub):
    await script(stub, {"content": {"selector": "h1.name"}})
    status, body, _ = await ask(stub)
    assert status == 200
    assert body["object"] == "chat.completion" and body["id"]
    assert json.loads(body["choices"][0]["message"]["content"]) == {"selector": "h1.name"}
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


async def test_answers_are_consumed_in_order_then_503_never_invented(stub):
    await script(
        stub, {"content": "plain text"}, {"content": {"n": 2}, "usage": {"prompt_tokens": 7, "completion_tokens": 3}}
    )
    assert (await ask(stub))[1]["choices"][0]["message"]["content"] == "plain text"
    second = (await ask(stub))[1]
    assert json.loads(second["choices"][0]["message"]["content"]) == {"n": 2}
    assert second["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    status, body, _ = await ask(stub)
    assert status == 503 and "error" in body


async def test_malformed_slow_and_failing_answers(stub):
    await script(
        stub, {"malformed": True}, {"slow": 0.05, "content": {"late": True}}, {"status": 429, "retry_after": 7}
    )
    content = (await ask(stub))[1]["choices"][0]["message"]["content"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    assert json.loads((await ask(stub))[1]["choices"][0]["message"]["content"]) == {"late": True}
    status, body, headers = await ask(stub)
    assert status == 429 and headers["Retry-After"] == "7" and "error" in body


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer "}, {"Authorization": "Basic abc"}])
async def test_a_request_without_a_bearer_token_is_refused_and_consumes_nothing(stub, headers):
    await script(stub, {"content": {"a": 1}})
    status, _, _ = await ask(stub, headers=headers)
    assert status == 401
    assert (await (await stub.get("/_sandbox/llm/received")).json()) == {"requests": [], "queued": 1}


async def test_received_records_every_body_and_reset_clears_queue_and_record(stub):
    await script(stub, {"content": {"a": 1}}, {"content": {"b": 2}})
    await ask(stub)
    received = await (await stub.get("/_sandbox/llm/received")).json()
    assert received == {"requests": [REQUEST], "queued": 1}
    assert (await stub.post("/_sandbox/llm/reset")).status == 200
    assert (await (await stub.get("/_sandbox/llm/received")).json()) == {"requests": [], "queued": 0}
    assert (await ask(stub))[0] == 503


async def test_a_bad_script_is_refused(stub):
    reply = await stub.post("/_sandbox/llm/script", json={"answers": "not a list"})
    assert reply.status == 400


async def test_python_m_sandbox_serves_it_as_the_llm_service():
    import sandbox.__main__  # noqa: F401 - registers every service, this one included

    assert "llm" in SERVICES
    async with TestClient(TestServer(build_app(SERVICES["llm"], {}))) as client:
        assert (await (await client.get("/health")).json()) == {"status": "ok", "service": "llm"}
