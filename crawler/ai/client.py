"""``LLMClient``: JSON answers from any OpenAI-compatible server, guarded, or None.

Every feature asks through ``complete_json`` and gets a parsed answer valid against the JSON schema
it gave, or None with one log line saying why (no page content, no key): no key configured (then
``from_settings`` already returned None), the text still holds personal data (``masking.assert_masked``:
nothing is sent), the answer cache, the circuit breaker, the budget, the server failing or slow, an
answer that is not JSON or not valid. None means "use your heuristic path"; it is never an exception.

The call goes through ``openai.AsyncOpenAI`` (``OPENAI_BASE_URL``, ``OPENAI_API_KEY``,
``LLM_TIMEOUT_SECONDS``, no retries: a failure is the breaker's business) with ``OPENAI_MODEL`` and
``response_format`` json_schema.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

import jsonschema
import openai

from crawler.ai.guard import Guard, number
from crawler.ai.masking import UnmaskedText, assert_masked
from crawler.ai.metrics import LLM_METRICS, LLMMetrics
from crawler.ai.settings_spec import setting_value

logger = logging.getLogger(__name__)

_said_no_key = False  # "heuristics only" is said once per process
FENCE_RE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.DOTALL)
# answers the server (or the way to it) is to blame for: the breaker counts them
BREAKER_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class LLMAnswer:
    data: dict[str, Any]  # the parsed answer, valid against the schema asked with
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    cached: bool  # from the answer cache: nothing was sent, nothing spent
    model: str

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _parse(content: str | None) -> Any:
    text = content or ""
    fenced = FENCE_RE.match(text)  # some models wrap JSON in a Markdown fence despite the schema
    return json.loads(fenced.group(1) if fenced else text)


def _schema_name(purpose: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", purpose)[:64] or "answer"


class LLMClient:
    def __init__(self, client: openai.AsyncOpenAI, model: str, guard: Guard, timeout: float, metrics=None, redis=None):
        self.client, self.model, self.guard, self.timeout = client, model, guard, timeout
        self.metrics: LLMMetrics = metrics or LLM_METRICS
        self._own_redis = redis  # a client made here from REDIS_URL, closed with us

    @classmethod
    def from_settings(cls, settings, *, redis=None, cache=None, clock=None) -> LLMClient | None:
        """A client, or None without ``OPENAI_API_KEY`` (said once, at INFO).

        ``redis``: an asyncio Redis client sharing budget and breaker; without one, ``REDIS_URL`` when set.
        ``cache``: ``guard.LocalCache()`` or ``guard.PostgresCache(settings)`` (the default).
        ``clock``: seconds, like ``time.time`` (tests).
        """
        global _said_no_key
        key = setting_value(settings, "OPENAI_API_KEY").strip()
        if not key:
            if not _said_no_key:
                _said_no_key = True
                logger.info("OPENAI_API_KEY is not set: AI features use their heuristic path")
            return None
        own_redis = None
        if redis is None and settings is not None and settings.get("REDIS_URL"):
            import redis.asyncio as redis_asyncio

            connect_timeout = float(settings.get("REDIS_CONNECT_TIMEOUT") or 5)
            redis = own_redis = redis_asyncio.Redis.from_url(
                settings.get("REDIS_URL"), socket_timeout=connect_timeout, socket_connect_timeout=connect_timeout
            )
        base_url = setting_value(settings, "OPENAI_BASE_URL").strip()
        timeout = number(settings, "LLM_TIMEOUT_SECONDS")
        client = openai.AsyncOpenAI(base_url=base_url or None, api_key=key, timeout=timeout, max_retries=0)
        guard = Guard.from_settings(settings, str(client.base_url), redis=redis, cache=cache, clock=clock)
        model = setting_value(settings, "OPENAI_MODEL").strip() or setting_value(None, "OPENAI_MODEL")
        return cls(client, model, guard, timeout, redis=own_redis)

    @classmethod
    def from_crawler(cls, crawler) -> LLMClient | None:
        """One client per crawler, sharing the crawler's Redis client (``crawler.shared_redis``)."""
        if not hasattr(crawler, "_llm_client"):
            from scrapy import signals

            from crawler.shared_redis import redis_for

            client = crawler._llm_client = cls.from_settings(crawler.settings, redis=redis_for(crawler))
            if client is not None:
                crawler.signals.connect(client.aclose, signal=signals.engine_stopped, weak=False)
        return crawler._llm_client

    async def aclose(self) -> None:
        await self.client.close()
        if self._own_redis is not None:
            await self._own_redis.aclose()

    def _none(self, purpose: str, outcome: str, why: str, *args) -> None:
        self.metrics.call(purpose, outcome)
        logger.info("LLM %s: no answer (%s): " + why, purpose, outcome, *args)
        return None

    async def complete_json(
        self, purpose: str, system: str, user: str, schema: dict, cache_key: str | None = None
    ) -> LLMAnswer | None:
        """The model's answer to ``system`` + ``user`` (both already masked), valid against ``schema``, or None."""
        validator = jsonschema.validators.validator_for(schema)(schema)
        if cache_key is not None:
            cached = await self.guard.cache.get(purpose, cache_key)
            if isinstance(cached, dict) and validator.is_valid(cached):
                self.metrics.call(purpose, "cache_hit")
                return LLMAnswer(cached, 0, 0, 0.0, True, self.model)
        try:
            assert_masked(system)
            assert_masked(user)
        except UnmaskedText as exc:
            return self._none(purpose, "refused_unmasked", "%s; nothing was sent", exc)
        try:
            probe = await self.guard.breaker.enter()
            if probe is None:
                return self._none(purpose, "breaker_open", "the breaker on the endpoint is open")
            refused = await self.guard.budget.reserve()
        except Exception as exc:  # Redis down: no budget accounting, so no spending
            return self._none(purpose, "guard_error", "budget or breaker unavailable (%s)", type(exc).__name__)
        if refused:
            return self._none(
                purpose,
                refused,
                "the %s budget is spent",
                "hourly calls" if refused == "budget_calls" else "daily dollars",
            )
        return await self._call(purpose, system, user, schema, validator, cache_key, probe)

    async def _call(self, purpose, system, user, schema, validator, cache_key, probe) -> LLMAnswer | None:
        try:
            async with asyncio.timeout(self.timeout + 1):  # openai's timeout is per read; this caps the call
                response = await self.client.chat.completions.create(
                    model=self.model,
                    messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
                    response_format={
                        "type": "json_schema",
                        "json_schema": {"name": _schema_name(purpose), "schema": schema, "strict": False},
                    },
                )  # no temperature: reasoning models refuse the parameter, and answers are verified anyway
        except (openai.APITimeoutError, TimeoutError):
            await self.guard.breaker.failure(probe)
            return self._none(purpose, "timeout", "no answer within %.1f s", self.timeout)
        except openai.APIStatusError as exc:
            if exc.status_code in BREAKER_STATUSES:
                await self.guard.breaker.failure(probe)
            return self._none(purpose, "error", "the server answered %s", exc.status_code)
        except openai.APIError as exc:  # connection refused, reset, an unreadable body
            await self.guard.breaker.failure(probe)
            return self._none(purpose, "error", "%s", type(exc).__name__)
        await self.guard.breaker.success(probe)
        usage = response.usage
        prompt_tokens = usage.prompt_tokens if usage else (len(system) + len(user)) // 4
        content = response.choices[0].message.content if response.choices else None
        completion_tokens = usage.completion_tokens if usage else len(content or "") // 4
        cost = self.guard.prices.cost(prompt_tokens, completion_tokens)
        self.metrics.usage(prompt_tokens, completion_tokens, cost)
        try:
            await self.guard.budget.spend(cost)
        except Exception as exc:
            logger.warning("LLM %s: spending of %.6f USD not recorded (%s)", purpose, cost, type(exc).__name__)
        try:
            data = _parse(content)
        except ValueError:
            return self._none(purpose, "malformed", "the answer is not JSON (%d characters)", len(content or ""))
        if not isinstance(data, dict) or not validator.is_valid(data):
            error = jsonschema.exceptions.best_match(validator.iter_errors(data)) if isinstance(data, dict) else None
            where = "/".join(map(str, error.absolute_path)) if error is not None else "top level"
            return self._none(purpose, "invalid", "the answer does not follow the schema (at %s)", where or "top level")
        if cache_key is not None:
            await self.guard.cache.put(purpose, cache_key, self.model, data)
        self.metrics.call(purpose, "ok")
        return LLMAnswer(data, prompt_tokens, completion_tokens, cost, False, self.model)

    async def forget(self, purpose: str, cache_key: str) -> None:
        """Drop a cached answer (one that failed the caller's verification) so the next ask goes out."""
        await self.guard.cache.forget(purpose, cache_key)
