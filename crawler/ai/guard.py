"""What stands between a feature and the LLM endpoint: budget, circuit breaker, answer cache, prices.

- Budget: at most ``HEAL_LLM_MAX_CALLS_PER_HOUR`` calls in any sliding hour, and a call starts only
  while the UTC day's spending is below ``HEAL_LLM_MAX_USD_PER_DAY``. A call is counted when it is
  reserved (a failed call may still have cost); its dollars when the usage comes back. With a Redis
  client both are shared by every worker (one Lua script reserves); without one, this process's own.
  Several calls in flight at once may overshoot the dollar limit by their own cost, never more.
- Breaker: ``crawler.resilience.circuits`` on one key per endpoint: ``LLM_BREAKER_FAILURES`` failures
  within ``LLM_BREAKER_WINDOW_SECONDS`` open it; after ``LLM_BREAKER_COOLDOWN_SECONDS`` one call is
  the probe, and its outcome closes or reopens it.
- Cache: valid answers by (purpose, cache key), in PostgreSQL (``llm_cache``, migration 0009) or in
  process. A cache that fails is a miss (said once in the log), never an error.

``clock`` (seconds, like ``time.time``) is injectable everywhere so tests move time themselves.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from crawler.ai.settings_spec import setting_value
from crawler.resilience.circuits import PASS, PROBE, LocalCircuits, RedisCircuits

logger = logging.getLogger(__name__)

HOUR_MS = 3_600_000
DAY_SECONDS = 86_400

RESERVE = """
local now = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - 3600000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 'budget_calls' end
if tonumber(redis.call('GET', KEYS[2]) or '0') >= tonumber(ARGV[2]) then return 'budget_usd' end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('PEXPIRE', KEYS[1], 3600000)
return ''
"""


def number(settings, name: str) -> float:
    raw = setting_value(settings, name).strip()
    return float(raw) if raw else float(setting_value(None, name))


@dataclass(frozen=True)
class Prices:
    input_per_mtok: float
    output_per_mtok: float

    @classmethod
    def from_settings(cls, settings) -> Prices:
        return cls(number(settings, "LLM_PRICE_INPUT_PER_MTOK"), number(settings, "LLM_PRICE_OUTPUT_PER_MTOK"))

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_mtok + completion_tokens * self.output_per_mtok) / 1_000_000


class LocalBudget:
    """This process's budget: calls in a sliding hour, dollars per UTC day."""

    def __init__(self, max_calls_per_hour: int, max_usd_per_day: float, clock: Callable[[], float] = time.time):
        self.max_calls, self.max_usd, self.clock = max_calls_per_hour, max_usd_per_day, clock
        self.calls: list[float] = []
        self.spent: dict[int, float] = {}

    def _day(self) -> int:
        return int(self.clock() // DAY_SECONDS)

    async def reserve(self) -> str:
        """ "" when a call may start (and it is counted), else why not: budget_calls / budget_usd."""
        now = self.clock()
        self.calls = [t for t in self.calls if t > now - HOUR_MS / 1000]
        if len(self.calls) >= self.max_calls:
            return "budget_calls"
        if self.spent.get(self._day(), 0.0) >= self.max_usd:
            return "budget_usd"
        self.calls.append(now)
        return ""

    async def spend(self, usd: float) -> None:
        day = self._day()
        self.spent = {day: self.spent.get(day, 0.0) + usd}  # earlier days are done with


class RedisBudget:
    """The same budget shared by every worker: a sorted set of call times, a float per UTC day."""

    def __init__(self, redis, prefix: str, max_calls_per_hour: int, max_usd_per_day: float, clock=time.time):
        self.redis, self.prefix, self.clock = redis, prefix + "llm:budget:", clock
        self.max_calls, self.max_usd = max_calls_per_hour, max_usd_per_day
        self._reserve = redis.register_script(RESERVE)

    def _usd_key(self) -> str:
        return f"{self.prefix}usd:{int(self.clock() // DAY_SECONDS)}"

    async def reserve(self) -> str:
        now_ms = int(self.clock() * 1000)
        reason = await self._reserve(
            keys=[self.prefix + "calls", self._usd_key()],
            args=[self.max_calls, self.max_usd, now_ms, f"{now_ms}:{uuid.uuid4().hex}"],
        )
        return reason.decode() if isinstance(reason, bytes) else reason

    async def spend(self, usd: float) -> None:
        key = self._usd_key()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrbyfloat(key, usd)
            pipe.expire(key, 2 * DAY_SECONDS)
            await pipe.execute()


class Breaker:
    """A circuit on the LLM endpoint (closed -> open -> one probe -> closed or open again)."""

    def __init__(self, circuits, key: str):
        self.circuits, self.key = circuits, key

    async def enter(self) -> str | None:
        """None while open; else the probe token ("" when closed: not a probe)."""
        token = uuid.uuid4().hex
        gate = await self.circuits.gate(self.key, token)
        if gate.change:
            logger.warning("LLM breaker on %s: %s", self.key, gate.change)
        if gate.decision == PASS:
            return ""
        return token if gate.decision == PROBE else None

    async def failure(self, probe: str) -> None:
        try:
            change = await self.circuits.failure(self.key, probe, uuid.uuid4().hex)
        except Exception as exc:  # Redis gone meanwhile: the call's outcome stands, its count is lost
            logger.warning("LLM breaker on %s: failure not recorded (%s)", self.key, type(exc).__name__)
            return
        if change:
            logger.warning("LLM breaker on %s: %s", self.key, change)

    async def success(self, probe: str) -> None:
        if not probe:
            return
        try:
            closed = await self.circuits.success(self.key, probe)
        except Exception as exc:
            logger.warning("LLM breaker on %s: probe success not recorded (%s)", self.key, type(exc).__name__)
            return
        if closed:
            logger.info("LLM breaker on %s: closed", self.key)


class LocalCache:
    """Answers in this process (tests, or no database)."""

    def __init__(self):
        self.answers: dict[tuple[str, str], dict] = {}

    async def get(self, purpose: str, key: str) -> dict | None:
        return self.answers.get((purpose, key))

    async def put(self, purpose: str, key: str, model: str, answer: dict) -> None:
        self.answers[(purpose, key)] = answer

    async def forget(self, purpose: str, key: str) -> None:
        self.answers.pop((purpose, key), None)


class PostgresCache:
    """Answers in ``llm_cache``, shared by every worker, kept across runs."""

    def __init__(self, settings):
        self.settings = settings

    async def _pool(self):
        from crawler.db.pool import get_pool  # only when the cache is used

        return await get_pool(self.settings)

    async def get(self, purpose: str, key: str) -> dict | None:
        pool = await self._pool()
        async with pool.connection() as conn:
            row = await (
                await conn.execute(
                    "UPDATE llm_cache SET hits = hits + 1 WHERE purpose = %s AND cache_key = %s RETURNING answer",
                    (purpose, key),
                )
            ).fetchone()
        return row[0] if row else None

    async def put(self, purpose: str, key: str, model: str, answer: dict) -> None:
        pool = await self._pool()
        async with pool.connection() as conn:
            await conn.execute(
                "INSERT INTO llm_cache (purpose, cache_key, model, answer) VALUES (%s, %s, %s, %s::jsonb) "
                "ON CONFLICT (purpose, cache_key) DO UPDATE SET answer = EXCLUDED.answer, model = EXCLUDED.model, "
                "created_at = now()",
                (purpose, key, model, orjson.dumps(answer).decode()),
            )

    async def forget(self, purpose: str, key: str) -> None:
        pool = await self._pool()
        async with pool.connection() as conn:
            await conn.execute("DELETE FROM llm_cache WHERE purpose = %s AND cache_key = %s", (purpose, key))


class SafeCache:
    """A cache whose failures are misses: the LLM path must not break on a cache problem."""

    def __init__(self, cache):
        self.cache, self.warned = cache, False

    async def _try(self, what: str, call, default=None):
        try:
            return await call()
        except Exception as exc:  # the database down, the table missing (unmigrated): a miss
            if not self.warned:
                self.warned = True
                logger.warning("LLM answer cache unavailable (%s on %s): calls go uncached", type(exc).__name__, what)
            return default

    async def get(self, purpose: str, key: str) -> dict | None:
        return await self._try("get", lambda: self.cache.get(purpose, key))

    async def put(self, purpose: str, key: str, model: str, answer: dict) -> None:
        await self._try("put", lambda: self.cache.put(purpose, key, model, answer))

    async def forget(self, purpose: str, key: str) -> None:
        await self._try("forget", lambda: self.cache.forget(purpose, key))


@dataclass
class Guard:
    budget: Any  # LocalBudget | RedisBudget
    breaker: Breaker
    cache: SafeCache
    prices: Prices

    @classmethod
    def from_settings(
        cls, settings, base_url: str, redis=None, cache=None, clock: Callable[[], float] | None = None
    ) -> Guard:
        """``redis``: share budget and breaker through it; ``cache``: LocalCache, PostgresCache (default)."""
        max_calls = int(number(settings, "HEAL_LLM_MAX_CALLS_PER_HOUR"))
        max_usd = number(settings, "HEAL_LLM_MAX_USD_PER_DAY")
        reset_ms = number(settings, "LLM_BREAKER_COOLDOWN_SECONDS") * 1000
        window_ms = number(settings, "LLM_BREAKER_WINDOW_SECONDS") * 1000
        threshold = int(number(settings, "LLM_BREAKER_FAILURES"))
        probe_ttl_ms = (number(settings, "LLM_TIMEOUT_SECONDS") + 10) * 1000  # a lost probe frees the circuit
        wall = clock or time.time
        if redis is not None:
            prefix = (settings.get("REDIS_KEY_PREFIX") if settings is not None else None) or "crawler:"
            budget = RedisBudget(redis, prefix, max_calls, max_usd, wall)
            circuits = RedisCircuits(redis, prefix + "llm:", reset_ms, probe_ttl_ms, threshold, window_ms, clock)
        else:
            budget = LocalBudget(max_calls, max_usd, wall)
            circuits = LocalCircuits(reset_ms, probe_ttl_ms, threshold, window_ms, clock or time.monotonic)
        endpoint = urlsplit(base_url).netloc or "api.openai.com"
        return cls(
            budget,
            Breaker(circuits, f"llm:{endpoint}"),
            SafeCache(cache or PostgresCache(settings)),
            Prices.from_settings(settings),
        )
