"""The sandbox's OpenAI-compatible LLM test double (sandbox/llm.py) on a real port in the test's event loop,
for tests/ai and tests/healing: script its answers, read back every request it received."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from crawler.ai import client as client_module
from sandbox.llm import make_app


class Stub:
    def __init__(self, server: TestServer, session: aiohttp.ClientSession):
        self.server, self.session = server, session
        self.base = str(server.make_url(""))
        self.url = self.base + "/v1"

    async def script(self, *answers: dict) -> None:
        async with self.session.post(self.base + "/_sandbox/llm/script", json={"answers": list(answers)}) as reply:
            assert reply.status == 200, await reply.text()

    async def received(self) -> list[dict]:
        async with self.session.get(self.base + "/_sandbox/llm/received") as reply:
            return (await reply.json())["requests"]

    async def queued(self) -> int:
        async with self.session.get(self.base + "/_sandbox/llm/received") as reply:
            return (await reply.json())["queued"]

    async def reset(self) -> None:
        async with self.session.post(self.base + "/_sandbox/llm/reset") as reply:
            assert reply.status == 200


@pytest.fixture
async def stub():
    server = TestServer(make_app({}), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession() as session:
        yield Stub(server, session)
    await server.close()


@pytest.fixture
def said_nothing_yet(monkeypatch):
    """As in a fresh process: the "no key" line has not been said."""
    monkeypatch.setattr(client_module, "_said_no_key", False)
