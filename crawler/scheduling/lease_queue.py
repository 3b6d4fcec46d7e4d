"""A shared priority queue on Redis whose pops are leases, not deletions.

scrapy-redis pops destructively (``ZRANGE`` + ``ZREMRANGEBYRANK``): whatever a
killed worker had popped is gone. Here a pop moves the entry, in one Lua call,
from the queue to a lease that expires; the worker renews its leases while it
holds them and acknowledges each when the request is handled. Any worker that
pops also returns expired leases (their worker is gone) to the queue first, so
another worker crawls them: delivery is at-least-once.

Keys, all under one base key with a ``{hash tag}`` (one Redis Cluster slot):

    <base>:queue    ZSET  score -priority, member = 16-digit sequence + payload
                          (the sequence keeps FIFO order within one priority and
                          lets identical payloads coexist)
    <base>:delayed  ZSET  score = not-before epoch ms, member = "<score>|<member>"
    <base>:leases   ZSET  score = expiry epoch ms, member = lease id (the sequence)
    <base>:held     HASH  lease id -> "<score>|<member>" (what to put back)
    <base>:owners   HASH  lease id -> worker token (only the holder acks or renews)
    <base>:seq      counter; <base>:stats HASH (shared counters, see stats.py)

The synchronous methods serve tools and tests; a worker queues the same scripts on a
``redis.asyncio`` pipeline (``pipe_*``), many in one round trip, off the reactor's path.

Serialisation is scrapy-redis's (``Base._encode_request``: ``request.to_dict``
+ pickle by default, SCHEDULER_SERIALIZER to change it).
"""

from __future__ import annotations

from scrapy_redis.queue import Base

SEQ_DIGITS = 16

# Promote due delayed entries, return expired leases, then lease the best ``count`` entries.
# KEYS: queue delayed leases held owners stats seq ; ARGV: now_ms expiry_ms token limit count
LUA_POP = """
local queue, delayed, leases, held, owners, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now, expiry, token, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local function requeue(entry)
  local sep = string.find(entry, '|', 1, true)
  redis.call('ZADD', queue, string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1))
end
for _, entry in ipairs(redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, limit)) do
  requeue(entry)
  redis.call('ZREM', delayed, entry)
end
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  local entry = redis.call('HGET', held, id)
  if entry then requeue(entry) end
  redis.call('ZREM', leases, id)
  redis.call('HDEL', held, id)
  redis.call('HDEL', owners, id)
end
if #expired > 0 then redis.call('HINCRBY', stats, 'scheduler/leases/expired_returned', #expired) end
local reply = {#expired}
local top = redis.call('ZRANGE', queue, 0, tonumber(ARGV[5]) - 1, 'WITHSCORES')
for i = 1, #top, 2 do
  local member, score = top[i], top[i + 1]
  redis.call('ZREM', queue, member)
  local id = string.sub(member, 1, %(digits)d)
  redis.call('HSET', held, id, score .. '|' .. member)
  redis.call('ZADD', leases, expiry, id)
  redis.call('HSET', owners, id, token)
  table.insert(reply, member)
end
return reply
""" % {"digits": SEQ_DIGITS}

# Push one entry (into delayed when not_before > 0) and, in the same step, ack the
# lease it replaces (a retry, redirect or deferral carries its parent's lease). With a
# dupefilter set and a fingerprint, check, push and mark are one step too: two workers
# queueing the same request at once queue it once, and no crash can fall between push and mark.
# KEYS: queue delayed leases held owners seq [dupefilter] ; ARGV: score payload not_before_ms lease_id token [fp]
# Returns -1 (already seen: nothing pushed, nothing acked), else 1 when the lease was acked, 0 when not.
LUA_PUSH = """
if KEYS[7] and redis.call('SISMEMBER', KEYS[7], ARGV[6]) == 1 then return -1 end
local seq = redis.call('INCR', KEYS[6])
local member = string.format('%%0%(digits)dd', seq) .. ARGV[2]
if tonumber(ARGV[3]) > 0 then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1] .. '|' .. member)
else
  redis.call('ZADD', KEYS[1], ARGV[1], member)
end
local acked = 0
if ARGV[4] ~= '' and redis.call('HGET', KEYS[5], ARGV[4]) == ARGV[5] then
  redis.call('ZREM', KEYS[3], ARGV[4])
  redis.call('HDEL', KEYS[4], ARGV[4])
  redis.call('HDEL', KEYS[5], ARGV[4])
  acked = 1
end
if KEYS[7] then redis.call('SADD', KEYS[7], ARGV[6]) end
return acked
""" % {"digits": SEQ_DIGITS}

# KEYS: leases held owners ; ARGV: token id... -> number acked
LUA_ACK = """
local n = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[3], ARGV[i]) == ARGV[1] then
    redis.call('ZREM', KEYS[1], ARGV[i])
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    n = n + 1
  end
end
return n
"""

# KEYS: leases owners ; ARGV: token expiry_ms id... -> ids no longer ours (expired and taken)
LUA_RENEW = """
local lost = {}
for i = 3, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('ZADD', KEYS[1], 'XX', ARGV[2], ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

# Put our own leases back in the queue (graceful close). KEYS: queue leases held owners ; ARGV: token id...
LUA_RELEASE = """
local n = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[4], ARGV[i]) == ARGV[1] then
    local entry = redis.call('HGET', KEYS[3], ARGV[i])
    if entry then
      local sep = string.find(entry, '|', 1, true)
      redis.call('ZADD', KEYS[1], string.sub(entry, 1, sep - 1), string.sub(entry, sep + 1))
    end
    redis.call('ZREM', KEYS[2], ARGV[i])
    redis.call('HDEL', KEYS[3], ARGV[i])
    redis.call('HDEL', KEYS[4], ARGV[i])
    n = n + 1
  end
end
return n
"""

# Delete the job's keys only when nothing is queued, delayed or leased.
# KEYS: queue delayed leases, then every key to delete
LUA_CLEANUP = """
if redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + redis.call('ZCARD', KEYS[3]) > 0 then
  return 0
end
for i = 4, #KEYS do redis.call('DEL', KEYS[i]) end
return 1
"""


class LeaseQueue(Base):
    """Priority queue with leases; ``pop`` returns ``(lease_id, request)`` or None."""

    def __init__(
        self, server, spider, key, serializer=None, token: str = "", lease_seconds: float = 60, reclaim_limit: int = 100
    ):
        super().__init__(server, spider, key, serializer)
        self.token = token
        self.lease_ms = int(lease_seconds * 1000)
        self.reclaim_limit = reclaim_limit
        self.keys = {
            name: f"{self.key}:{name}" for name in ("queue", "delayed", "leases", "held", "owners", "stats", "seq")
        }
        self._pop = server.register_script(LUA_POP)
        self._push = server.register_script(LUA_PUSH)
        self._ack = server.register_script(LUA_ACK)
        self._renew = server.register_script(LUA_RENEW)
        self._release = server.register_script(LUA_RELEASE)
        self._cleanup = server.register_script(LUA_CLEANUP)
        self.last_expired = 0
        self.aio = None

    def bind_async(self, client) -> None:
        """Use a ``redis.asyncio`` client too, for the ``pipe_*`` methods and the ``a*`` ones."""
        self.aio = client
        self._a = {
            "pop": LUA_POP,
            "push": LUA_PUSH,
            "ack": LUA_ACK,
            "renew": LUA_RENEW,
            "release": LUA_RELEASE,
            "cleanup": LUA_CLEANUP,
        }
        registered = {
            "pop": self._pop,
            "push": self._push,
            "ack": self._ack,
            "renew": self._renew,
            "release": self._release,
        }
        self._sha = {name: script.sha for name, script in registered.items()}

    async def aload_scripts(self) -> None:
        """Load the scripts (at start, and after a NOSCRIPT reply: Redis restarted or flushed them).
        The pipelines then call EVALSHA alone: redis-py would ask SCRIPT EXISTS before every one."""
        async with self.aio.pipeline(transaction=False) as pipe:
            for script in self._a.values():
                pipe.script_load(script)
            await pipe.execute()

    def _evalsha(self, pipe, name: str, keys: list, args: list) -> None:
        pipe.evalsha(self._sha[name], len(keys), *keys, *args)

    # -- asyncio: each pipe_* queues one command on ``pipe``; its reply comes from ``pipe.execute()`` ----
    def pipe_push(self, pipe, payload, priority, not_before=0.0, replaces="", seen=None) -> None:
        self._evalsha(pipe, "push", *self._push_args(payload, priority, not_before, replaces, seen))

    def pipe_pop(self, pipe, now: float, count: int) -> None:
        self._evalsha(pipe, "pop", self._pop_keys(), self._pop_args(now, count))

    def parse_pop(self, reply) -> tuple[int, list[tuple[str, bytes]]]:
        """(expired leases returned, [(lease id, encoded request)])."""
        return int(reply[0]), [(member[:SEQ_DIGITS].decode(), member[SEQ_DIGITS:]) for member in reply[1:]]

    def decode(self, payload: bytes):
        return self._decode_request(payload)

    def pipe_ack(self, pipe, lease_ids) -> None:
        self._evalsha(pipe, "ack", self._k("leases", "held", "owners"), [self.token, *lease_ids])

    def pipe_release(self, pipe, lease_ids) -> None:
        self._evalsha(pipe, "release", self._k("queue", "leases", "held", "owners"), [self.token, *lease_ids])

    def pipe_renew(self, pipe, lease_ids, now: float) -> None:
        self._evalsha(
            pipe, "renew", self._k("leases", "owners"), [self.token, int(now * 1000) + self.lease_ms, *lease_ids]
        )

    def pipe_counts(self, pipe) -> None:
        for name in ("queue", "delayed", "leases"):
            pipe.zcard(self.keys[name])
        pipe.zrange(self.keys["delayed"], 0, 0, withscores=True)

    @staticmethod
    def parse_counts(replies) -> tuple[dict[str, int], float | None]:
        queued, delayed, leased, first = replies
        return {"queued": queued, "delayed": delayed, "leased": leased}, (first[0][1] / 1000 if first else None)

    async def arelease(self, lease_ids) -> int:
        if not lease_ids:
            return 0
        keys = self._k("queue", "leases", "held", "owners")
        return int(await self.aio.eval(self._a["release"], len(keys), *keys, self.token, *lease_ids))

    async def acleanup(self, extra_keys=()) -> bool:
        keys = [*self._k("queue", "delayed", "leases"), *self._k("held", "owners", "seq"), *extra_keys]
        done = bool(await self.aio.eval(self._a["cleanup"], len(keys), *keys))
        if done:
            await self.aio.expire(self.keys["stats"], 86400)
        return done

    def _k(self, *names: str) -> list[str]:
        return [self.keys[name] for name in names]

    def encode(self, request) -> bytes:
        return self._encode_request(request)

    def push_encoded(
        self,
        payload: bytes,
        priority: int,
        not_before: float = 0.0,
        replaces: str = "",
        seen: tuple[str, str] | None = None,
    ) -> int:
        """Queue ``payload``; ack lease ``replaces`` atomically: 1 when that lease was ours and is acked, else 0.
        ``seen``: (dupefilter set key, fingerprint): -1 and nothing done when the fingerprint is in the set,
        otherwise it is added in the same step as the push."""
        keys, args = self._push_args(payload, priority, not_before, replaces, seen)
        return int(self._push(keys=keys, args=args))

    def _push_args(self, payload, priority, not_before, replaces, seen) -> tuple[list, list]:
        keys = self._k("queue", "delayed", "leases", "held", "owners", "seq")
        args = [-priority, payload, int(not_before * 1000) if not_before else 0, replaces, self.token]
        if seen is not None:
            keys.append(seen[0])
            args.append(seen[1])
        return keys, args

    def _pop_keys(self) -> list[str]:
        return self._k("queue", "delayed", "leases", "held", "owners", "stats", "seq")

    def _pop_args(self, now: float, count: int) -> list:
        return [int(now * 1000), int(now * 1000) + self.lease_ms, self.token, self.reclaim_limit, count]

    def push(self, request):
        self.push_encoded(self.encode(request), request.priority)

    def pop(self, now: float):
        """The best request as ``(lease_id, request)``, leased; None when the queue is empty."""
        popped = self.pop_many(now, 1)
        return popped[0] if popped else None

    def pop_many(self, now: float, count: int) -> list:
        """Up to ``count`` requests, best first, each leased: one round trip for them all."""
        reply = self._pop(keys=self._pop_keys(), args=self._pop_args(now, count))
        self.last_expired, popped = self.parse_pop(reply)
        return [(lease, self._decode_request(payload)) for lease, payload in popped]

    def ack(self, lease_ids) -> int:
        if not lease_ids:
            return 0
        return int(self._ack(keys=self._k("leases", "held", "owners"), args=[self.token, *lease_ids]))

    def renew(self, lease_ids, now: float) -> list[str]:
        """Extend our leases; returns the ids that expired and went to another worker meanwhile."""
        if not lease_ids:
            return []
        expiry = int(now * 1000) + self.lease_ms
        lost = self._renew(keys=self._k("leases", "owners"), args=[self.token, expiry, *lease_ids])
        return [item.decode() for item in lost]

    def release(self, lease_ids) -> int:
        if not lease_ids:
            return 0
        return int(self._release(keys=self._k("queue", "leases", "held", "owners"), args=[self.token, *lease_ids]))

    def counts(self) -> dict[str, int]:
        """Shared totals: queued, delayed and leased (by any worker)."""
        return self.counts_and_next_due()[0]

    def counts_and_next_due(self) -> tuple[dict[str, int], float | None]:
        """The totals, and when (epoch seconds) the earliest delayed request is due."""
        with self.server.pipeline(transaction=False) as pipe:
            self.pipe_counts(pipe)
            return self.parse_counts(pipe.execute())

    def __len__(self):
        counts = self.counts()
        return counts["queued"] + counts["delayed"]

    def cleanup(self, extra_keys=()) -> bool:
        """Delete the job's keys (and ``extra_keys``) if nothing is queued, delayed or leased."""
        keys = [*self._k("queue", "delayed", "leases"), *self._k("held", "owners", "seq"), *extra_keys]
        done = bool(self._cleanup(keys=keys, args=[]))
        if done:  # the job's totals stay readable for a day, then go
            self.server.expire(self.keys["stats"], 86400)
        return done

    def clear(self):
        self.server.delete(*self.keys.values())
