"""Circuit-breaker state per domain: closed -> open -> half-open -> closed.

- ``gate``: may a request go? closed: yes. open and cooling down: no, wait this
  long. Cool-down over: exactly one request becomes the probe (a lease with a
  TTL, so a probe lost with its worker frees the circuit for another) and the
  circuit is half-open; everyone else waits for the probe's outcome.
- ``failure``: counted within a sliding window; ``threshold`` failures open the
  circuit. A failed probe opens it again.
- ``success``: a successful probe closes it.

``RedisCircuits`` does each step in one Lua script (all workers see one
circuit, and only one probe passes among them); ``LocalCircuits`` in process.
Every step returns the state change it caused ("opened", "half_open",
"closed", "reopened") or "" so the middleware can log and count it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from crawler.resilience.redis_clock import NOW_MS, now_arg

PASS, WAIT, PROBE = 0, 1, 2
TTL_MS = 86_400_000

GATE = (
    NOW_MS
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'opened_at')
if not h[1] or h[1] == 'closed' then return {0, 0, ''} end
-- the probe itself, back from a deferral (rate limit, retry): still the probe
if redis.call('GET', KEYS[2]) == ARGV[3] then return {2, 0, ''} end
local ready = tonumber(h[2]) + tonumber(ARGV[1])
if now < ready then return {1, ready - now, ''} end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[2]) then
  local change = ''
  if h[1] ~= 'half_open' then change = 'half_open' end
  redis.call('HSET', KEYS[1], 'state', 'half_open')
  return {2, 0, change}
end
local left = redis.call('PTTL', KEYS[2])
if left < 0 then left = 0 end
return {1, math.min(left, tonumber(ARGV[4])), ''}
"""
)

FAILURE = (
    NOW_MS
    + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if ARGV[4] ~= '' and redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 'reopened'
end
if state ~= 'closed' then return '' end
redis.call('ZADD', KEYS[3], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[3], ARGV[2])
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[1]) then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now)
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 'opened'
end
return ''
"""
)

SUCCESS = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2], KEYS[3])
  redis.call('HSET', KEYS[1], 'state', 'closed')
  return 'closed'
end
return ''
"""


@dataclass(frozen=True)
class Gate:
    decision: int  # PASS, WAIT or PROBE
    wait_ms: float = 0.0
    change: str = ""


class RedisCircuits:
    def __init__(
        self, redis, prefix: str, reset_ms: float, probe_ttl_ms: float, threshold: int, window_ms: float, clock=None
    ):
        self.prefix = prefix + "circuit:"
        self.clock = clock  # None: Redis's clock (see redis_clock)
        # whole milliseconds: PEXPIRE and SET PX refuse "60000.0"
        self.reset_ms, self.probe_ttl_ms = int(reset_ms), int(probe_ttl_ms)
        self.threshold, self.window_ms = threshold, int(window_ms)
        self._gate = redis.register_script(GATE)
        self._failure = redis.register_script(FAILURE)
        self._success = redis.register_script(SUCCESS)

    def _keys(self, domain: str) -> list[str]:
        base = f"{self.prefix}{{{domain}}}"
        return [base, base + ":probe", base + ":failures"]

    async def gate(self, domain: str, token: str) -> Gate:
        decision, wait, change = await self._gate(
            keys=self._keys(domain)[:2],
            args=[self.reset_ms, int(self.probe_ttl_ms), token, self.reset_ms, now_arg(self.clock)],
        )
        return Gate(int(decision), float(wait), change.decode() if isinstance(change, bytes) else change)

    async def failure(self, domain: str, probe_token: str, failure_id: str, threshold: int | None = None) -> str:
        change = await self._failure(
            keys=self._keys(domain),
            args=[threshold or self.threshold, self.window_ms, TTL_MS, probe_token, failure_id, now_arg(self.clock)],
        )
        return change.decode() if isinstance(change, bytes) else change

    async def success(self, domain: str, probe_token: str) -> str:
        if not probe_token:
            return ""
        change = await self._success(keys=self._keys(domain), args=[probe_token])
        return change.decode() if isinstance(change, bytes) else change


@dataclass
class _Circuit:
    state: str = "closed"
    opened_at: float = 0.0
    probe: str = ""
    probe_expires: float = 0.0
    failures: list[float] = field(default_factory=list)


class LocalCircuits:
    def __init__(self, reset_ms, probe_ttl_ms, threshold, window_ms, clock=time.monotonic):
        self.reset_ms, self.probe_ttl_ms = reset_ms, probe_ttl_ms
        self.threshold, self.window_ms = threshold, window_ms
        self.circuits: dict[str, _Circuit] = {}
        self.clock = clock

    def _now(self) -> float:
        return self.clock() * 1000

    async def gate(self, domain, token):
        circuit, now = self.circuits.get(domain), self._now()
        if circuit is None or circuit.state == "closed":
            return Gate(PASS)
        if circuit.probe == token and circuit.probe_expires > now:  # the probe, back from a deferral
            return Gate(PROBE)
        ready = circuit.opened_at + self.reset_ms
        if now < ready:
            return Gate(WAIT, ready - now)
        if not circuit.probe or circuit.probe_expires <= now:
            change = "" if circuit.state == "half_open" else "half_open"
            circuit.state, circuit.probe, circuit.probe_expires = "half_open", token, now + self.probe_ttl_ms
            return Gate(PROBE, 0, change)
        return Gate(WAIT, min(circuit.probe_expires - now, self.reset_ms))

    async def failure(self, domain, probe_token, failure_id, threshold=None):
        circuit, now = self.circuits.setdefault(domain, _Circuit()), self._now()
        if probe_token and circuit.probe == probe_token:
            circuit.state, circuit.opened_at, circuit.probe, circuit.failures = "open", now, "", []
            return "reopened"
        if circuit.state != "closed":
            return ""
        circuit.failures = [t for t in circuit.failures if t > now - self.window_ms] + [now]
        if len(circuit.failures) >= (threshold or self.threshold):
            circuit.state, circuit.opened_at, circuit.failures = "open", now, []
            return "opened"
        return ""

    async def success(self, domain, probe_token):
        circuit = self.circuits.get(domain)
        if probe_token and circuit is not None and circuit.probe == probe_token:
            circuit.state, circuit.probe, circuit.failures = "closed", "", []
            return "closed"
        return ""
