"""An OpenAI-compatible chat-completions endpoint for tests (``llm``, port 8500): a TEST DOUBLE, NOT A MODEL.

It understands nothing and invents nothing: every answer is one a test queued beforehand, consumed in
order. With the queue empty it answers 503 ``{"error": ...}``. Real models are reached by pointing
``OPENAI_BASE_URL`` at a real server; this double only lets tests script right, wrong, malformed, slow
and failing answers, and check what left the process.

    POST /v1/chat/completions     (``Authorization: Bearer <anything non-empty>``, 401 otherwise)
        -> {"id", "object": "chat.completion", "created", "model", "choices": [{"index": 0,
            "message": {"role": "assistant", "content": TEXT}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}
    POST /_sandbox/llm/script     {"answers": [ANSWER, ...]}   appends to the queue
    GET  /_sandbox/llm/received   {"requests": [every request body received, in order], "queued": N}
    POST /_sandbox/llm/reset      empties the queue and the received list

An ANSWER is one of:

    {"content": <object or string>}        an object is sent as JSON text (``response_format`` json_schema
                                           or not), a string as it is; right or wrong, the test decides
    {"malformed": true}                    content that is not JSON
    {"slow": seconds, "content"?: ...}     the answer (content, or ``{}``) after that delay
    {"status": 500|429|503, "retry_after"?: n}   that error status (``Retry-After`` header when given)

Optional on a content answer: ``"usage": {"prompt_tokens": n, "completion_tokens": m}`` (default: about
one token per four characters of the request's messages, and of the content).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web

from sandbox.server import Service, register

STATE = web.AppKey("llm_state", dict)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _prompt_text(body: dict) -> str:
    messages = body.get("messages") or []
    return "".join(str(m.get("content", "")) for m in messages if isinstance(m, dict))


def _completion(body: dict, content: str, usage: dict | None) -> dict[str, Any]:
    prompt_tokens = int((usage or {}).get("prompt_tokens", _tokens(_prompt_text(body))))
    completion_tokens = int((usage or {}).get("completion_tokens", _tokens(content)))
    return {
        "id": f"chatcmpl-sandbox-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model") or "sandbox-double"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _error(status: int, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": "sandbox", "code": status}}, status=status, headers=headers
    )


async def chat_completions(request: web.Request) -> web.Response:
    state = request.app[STATE]
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer ") or not auth[len("Bearer ") :].strip():
        return _error(401, "missing or empty bearer token")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "the body is not JSON")
    state["received"].append(body)
    if not state["queue"]:
        return _error(503, "no scripted answer queued (this is a test double, not a model)")
    answer = state["queue"].pop(0)
    if "status" in answer:
        headers = {"Retry-After": str(answer["retry_after"])} if "retry_after" in answer else None
        return _error(int(answer["status"]), "scripted failure", headers)
    if "slow" in answer:
        await asyncio.sleep(float(answer["slow"]))
    if answer.get("malformed"):
        content = 'this is not JSON {"selector": '
    else:
        scripted = answer.get("content", {})
        content = scripted if isinstance(scripted, str) else json.dumps(scripted)
    return web.json_response(_completion(body, content, answer.get("usage")))


async def script(request: web.Request) -> web.Response:
    body = await request.json()
    answers = body.get("answers") if isinstance(body, dict) else None
    if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
        return _error(400, 'expected {"answers": [{...}, ...]}')
    request.app[STATE]["queue"].extend(answers)
    return web.json_response({"queued": len(request.app[STATE]["queue"])})


async def received(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"requests": state["received"], "queued": len(state["queue"])})


async def reset(request: web.Request) -> web.Response:
    request.app[STATE].update(queue=[], received=[])
    return web.json_response({"queued": 0})


def make_app(options: dict) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app[STATE] = {"queue": [], "received": []}
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/_sandbox/llm/script", script)
    app.router.add_get("/_sandbox/llm/received", received)
    app.router.add_post("/_sandbox/llm/reset", reset)
    return app


SERVICE = register(Service("llm", 8500, make_app, "OpenAI-compatible LLM test double (scripted answers, not a model)"))
