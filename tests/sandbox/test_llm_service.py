"""``python -m sandbox`` serves the LLM test double as service "llm", and the product's client talks to it.

(The double's own behaviour is in test_llm_stub.py, in process.)
"""

from __future__ import annotations

import aiohttp
import pytest

from crawler.ai import LLMClient, LocalCache

pytestmark = pytest.mark.e2e


async def test_python_m_sandbox_serves_it_to_the_crawlers_client(sandbox):
    base = sandbox["llm"]
    client = LLMClient.from_settings({"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": base + "/v1"}, cache=LocalCache())
    async with aiohttp.ClientSession() as http:
        await http.post(base + "/_sandbox/llm/reset")
        await http.post(base + "/_sandbox/llm/script", json={"answers": [{"content": {"selector": "h1"}}]})
        answer = await client.complete_json("sandbox", "Answer in JSON.", "<h1>[NAME]</h1>", {"type": "object"})
        assert answer is not None and answer.data == {"selector": "h1"}
        received = await (await http.get(base + "/_sandbox/llm/received")).json()
        assert [m["content"] for m in received["requests"][0]["messages"]] == ["Answer in JSON.", "<h1>[NAME]</h1>"]
    await client.aclose()
