"""The shared scheduler's Redis I/O, off the reactor's path (see shared.py).

Scrapy calls its scheduler synchronously, from the reactor thread: a Redis round
trip there stalls every download, callback and timer for its length. So the
scheduler only touches local buffers, and one background task (``Pump``) talks
to Redis through ``redis.asyncio``, batching in one pipeline per tick:

1. pushes, in the order they were enqueued (each a LUA_PUSH: dupefilter check,
   push and, for a retry/redirect/deferral, the ack of the lease it replaces);
2. acks, only of leases whose callbacks' requests were pushed by an earlier tick
   (``Pump.pushed`` then ``Pump.ack``: a push that fails must never be followed
   by its parent's ack in the same pipeline);
3. lease renewals, every SCHEDULER_LEASE_SECONDS / 3;
4. a pop refilling the prefetch buffer (after the pushes: a child just queued
   can come straight back);
5. the shared counts (queued / delayed / leased), for ``has_pending_requests``
   and the gauges.

Redis unreachable (a connection error or a timeout, including while the scripts
load): the tick's pushes go back to the head of the buffer, in order, and are
retried with back-off like its acks; their parents stay leased and renewed, so a
crash meanwhile loses nothing. A push whose outcome is unknown (Redis ran it, the
reply was lost) may be queued twice: at-least-once; with the exact dupefilter the
retry's atomic seen-check answers -1. Only after SCHEDULER_LEASE_SECONDS of
failures, once the scheduler closes, or on an error reply (Redis out of memory)
are the pushes kept in this worker's memory (``spill``, logged) so that ``pushed()`` and the close always finish; the
acks waiting on them then return their parents' leases to the queue instead of
acking them (shared.py ``flush_acks``): a crash loses nothing, at the cost of a
duplicate crawl. A lost reply of a pop leaves its leases owned by this worker
but unknown to it: they return to the queue when they expire (at-least-once).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from dataclasses import dataclass

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

LEASE = "_scheduler_lease"  # meta: the lease id of a request popped from the shared queue
MAX_BATCH = 500  # pushes per pipeline: bounds one tick's reply parsing on the reactor
# Redis unreachable or slow: the outcome is unknown, the tick is retried (pushes and acks)
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, asyncio.TimeoutError)


@dataclass(slots=True)
class Push:
    request: object
    payload: bytes
    score: int
    not_before: float
    replaces: str  # the lease this request replaces (acked in the same Lua step), or ""
    seen: tuple[str, str] | None  # (dupefilter set, fingerprint) checked and marked in the push
    late_fp: str | None  # checked before and marked after the push (the Bloom filter)
    seq: int = 0  # order of enqueueing
    queued: bool = False  # Redis queued it (the Bloom filter marks it then)


class Pump:
    def __init__(self, scheduler):
        self.s = scheduler
        self.pushes: deque[Push] = deque()
        self.enqueued = 0  # pushes handed to the pump
        self.resolved = 0  # every push before this one is queued in Redis, filtered as seen, or kept in memory
        self.acks: list[tuple[list[str], asyncio.Future, bool]] = []  # (lease ids, future, release not ack)
        self.waiters: list[tuple[int, asyncio.Future]] = []
        self.next_poll = 0.0  # monotonic
        self.poll_delay = 0.0
        self.next_renew = time.monotonic() + scheduler.renew_seconds
        self.want_counts = True
        self.failures = 0
        self.unreachable_since: float | None = None  # monotonic time of the first failure in a row
        self.spilled = 0  # pushes kept in memory because Redis stayed unreachable (see flush_acks)
        self.closing = False  # the scheduler closes: an unreachable Redis spills at once
        self.scripts_loaded = False
        self.published_at = 0.0
        self.joined = False
        self.stopping = False
        self.task: asyncio.Task | None = None
        self._kicked = False
        self._sleeper: asyncio.Future | None = None

    @property
    def pending(self) -> int:
        """Pushes not yet resolved (buffered or in the pipeline under way)."""
        return self.enqueued - self.resolved

    def start(self) -> None:
        self.task = asyncio.get_event_loop().create_task(self._run())

    async def stop(self) -> None:
        self.stopping = True
        self.kick()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    def kick(self) -> None:
        """Run a tick soon (the pump decides what is due)."""
        self._kicked = True
        if self._sleeper is not None and not self._sleeper.done():
            self._sleeper.set_result(None)

    def add(self, push: Push) -> None:
        push.seq = self.enqueued
        self.pushes.append(push)
        self.enqueued += 1
        self.next_poll = 0.0  # there is work: ask Redis at once
        self.kick()

    def poll_soon(self) -> None:
        self.next_poll = min(self.next_poll, time.monotonic() + self.s.poll_min)
        self.kick()

    async def pushed(self) -> None:
        """Return once every push enqueued before this call is resolved."""
        target = self.enqueued
        if self.resolved >= target:
            return
        future = asyncio.get_event_loop().create_future()
        self.waiters.append((target, future))
        self.kick()
        await future

    async def ack(self, lease_ids: list[str], release: bool = False) -> int:
        """Ack in the next tick; the number acked (the others expired and went to another worker).
        ``release``: return the leases to the queue instead (their requests are crawled again)."""
        future = asyncio.get_event_loop().create_future()
        self.acks.append((lease_ids, future, release))
        self.kick()
        return await future

    # -- the loop ------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while not (self.stopping and not self.pushes and not self.acks):
            await self._sleep(self._due_in())
            try:
                await self._tick()
                self.failures, self.unreachable_since = 0, None
            except Exception as exc:  # Redis down or slow: pushes and acks are retried (see _failed)
                self.failures += 1
                if self.failures == 1 or self.failures % 20 == 0:
                    logger.warning(
                        "Shared queue unreachable (%s: %s, %d time(s) in a row); retrying",
                        type(exc).__name__,
                        str(exc)[:200],
                        self.failures,
                    )
                if not (self.stopping and not self.pushes and not self.acks):  # never a tight loop
                    await asyncio.sleep(min(self.s.poll_max, self.s.poll_min * 2**self.failures))

    def _due_in(self) -> float:
        if self.pushes or self.acks or self.stopping or self.want_counts:
            return 0.0
        s, now = self.s, time.monotonic()
        due = s.counts_at + s.ack_seconds
        if s.held:
            due = min(due, self.next_renew)
        if len(s.prefetched) <= s.refill_at:
            due = min(due, self.next_poll)
        return due - now

    async def _sleep(self, delay: float) -> None:
        if self._kicked or delay <= 0:
            self._kicked = False
            return
        loop = asyncio.get_event_loop()
        self._sleeper = loop.create_future()
        handle = loop.call_later(delay, self.kick) if math.isfinite(delay) else None
        try:
            await self._sleeper
        finally:
            if handle is not None:
                handle.cancel()
            self._sleeper, self._kicked = None, False

    async def _tick(self) -> None:
        s = self.s
        now, mono = time.time(), time.monotonic()
        batch = [self.pushes.popleft() for _ in range(min(MAX_BATCH, len(self.pushes)))]
        pushes, acks, replies = batch, [], None
        try:
            if not self.scripts_loaded:  # a failure here is a failed tick like any other
                await s.queue.aload_scripts()
                self.scripts_loaded = True
            pushes = await self._bloom_check(batch)
            acks, self.acks = self.acks, []
            renew = list(s.held) if s.held and mono >= self.next_renew else []
            want = s.prefetch - len(s.prefetched)
            pop = want > 0 and len(s.prefetched) <= s.refill_at and mono >= self.next_poll and not self.stopping
            # counts: for the gauges, and each poll while this worker holds nothing (the idle countdown)
            counts = self.want_counts or mono - s.counts_at >= s.ack_seconds or (pop and not s.held)
            if not (pushes or acks or renew or pop or counts):
                self._resolve()  # the Bloom filter may have filtered the whole batch
                return
            async with s.aio.pipeline(transaction=False) as pipe:
                for push in pushes:
                    s.queue.pipe_push(pipe, push.payload, push.score, push.not_before, push.replaces, push.seen)
                for ids, _, release in acks:
                    (s.queue.pipe_release if release else s.queue.pipe_ack)(pipe, ids)
                if renew:
                    s.queue.pipe_renew(pipe, renew, now)
                if counts:  # before the pop: what is left for everyone, our own new leases not yet counted
                    s.queue.pipe_counts(pipe)
                if pop:  # last: a reply lost here leaves leases we do not know of; they expire (see above)
                    s.queue.pipe_pop(pipe, now, want)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:
            self._failed(pushes, acks, exc)
            raise
        try:
            self._replies(replies, pushes, acks, renew, counts, pop, mono, now)
        finally:  # whatever happened in between, no waiter is left waiting for this tick
            self._resolve()
            for _, future, _ in acks:
                if not future.done():
                    future.set_exception(RuntimeError("the shared queue's reply could not be read"))
        if late := [push.late_fp for push in pushes if push.late_fp and push.queued]:
            try:  # marked only once queued: a crash in between costs a duplicate crawl, not a loss
                await s.df.amark(late)
            except Exception:
                logger.debug("Marking %d queued request(s) seen failed; they may be crawled twice", len(late))
        if acks:
            s._wake_engine_at(0)  # held leases went: the engine may now find the job idle

    def _replies(self, replies, pushes, acks, renew, counts, pop, mono: float, now: float) -> None:
        if any(isinstance(reply, NoScriptError) for reply in replies):
            self.scripts_loaded = False  # Redis restarted or flushed its scripts: loaded again next tick
        replies = iter(replies)
        retry = []
        for push in pushes:
            reply = next(replies)
            if isinstance(reply, NoScriptError):
                retry.append(push)
            else:
                push.queued = self._pushed(push, reply)
        self.pushes.extendleft(reversed(retry))  # first again, in order
        self._resolve()
        for _, future, _ in acks:
            reply = next(replies)
            if not future.done():
                future.set_exception(reply) if isinstance(reply, Exception) else future.set_result(int(reply))
        if renew:
            self._renewed(next(replies), mono)
        if counts:
            self._counted([next(replies) for _ in range(4)], now, mono)
        if pop:
            self._popped(next(replies), mono)

    def _failed(self, pushes: list[Push], acks: list, exc: BaseException) -> None:
        """A tick that did not complete: retry its pushes (their outcome is unknown) unless Redis has been
        unreachable too long or the scheduler closes; its acks fail (flush_acks retries them)."""
        s, mono = self.s, time.monotonic()
        if self.unreachable_since is None:
            self.unreachable_since = mono
        retry = isinstance(exc, UNREACHABLE) and not (self.closing or self.stopping)
        if not retry or mono - self.unreachable_since >= s.lease_seconds:
            self.spill(pushes, exc)  # an error a retry would not cure, too long a wait, or the close
        else:
            self.pushes.extendleft(reversed(pushes))  # first again, in order; their parents stay leased
        self._resolve()
        for _, future, _ in acks:
            if not future.done():
                future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))

    def spill(self, pushes: list[Push], exc: BaseException) -> None:
        """Keep ``pushes`` in this worker's memory: Redis did not take them (unreachable too long, the
        scheduler closes, or an error reply). Their parents' leases are never acked for them: a
        replacement carries its parent's lease, and the parents of children are returned to the
        queue (shared.py ``flush_acks``), so a crash loses nothing."""
        if not pushes:
            return
        logger.warning(
            "The shared queue did not take %d request(s) (%s: %s): kept in this worker's memory; the leases "
            "of the responses that produced them go back to the queue instead of being acked",
            len(pushes),
            type(exc).__name__,
            str(exc)[:200],
        )
        self.spilled += len(pushes)
        for push in pushes:
            self.s._spill(push)

    async def _bloom_check(self, pushes: list[Push]) -> list[Push]:
        """Drop the pushes the Bloom filter has seen (its check cannot be part of LUA_PUSH)."""
        checked = [push for push in pushes if push.late_fp]
        if not checked:
            return pushes
        present = await self.s.df.acontains([push.late_fp for push in checked])
        seen = {id(push) for push, flag in zip(checked, present, strict=True) if flag}
        first: set[str] = set()  # two identical requests in one batch: both pass the check, only one goes
        for push in checked:
            if id(push) not in seen:
                if push.late_fp in first:
                    seen.add(id(push))
                first.add(push.late_fp)
        for push in pushes:
            if id(push) in seen:
                self.s._filtered(push)
        return [push for push in pushes if id(push) not in seen]

    # -- replies -------------------------------------------------------------------------------------
    def _pushed(self, push: Push, reply) -> bool:
        s = self.s
        if isinstance(reply, Exception):  # e.g. Redis out of memory
            self.spill([push], reply)
            return False
        if int(reply) < 0:  # another worker queued it first
            s._filtered(push)
            return False
        if push.replaces:
            s.held.pop(push.replaces, None)
            s._inc("scheduler/leases/acked", int(reply))
        s._inc("scheduler/enqueued/redis")
        return True

    def _resolve(self) -> None:
        self.resolved = self.pushes[0].seq if self.pushes else self.enqueued
        if not self.waiters:
            return
        waiting = []
        for target, future in self.waiters:
            if self.resolved >= target:
                if not future.done():
                    future.set_result(None)
            else:
                waiting.append((target, future))
        self.waiters = waiting

    def _renewed(self, reply, mono: float) -> None:
        if isinstance(reply, Exception):  # the leases may expire; at-least-once still holds
            logger.warning("Renewing %d lease(s) failed: %s", len(self.s.held), reply)
            return
        self.next_renew = mono + self.s.renew_seconds
        for lease in reply:
            self.s.held.pop(lease.decode(), None)
        self.s._inc("scheduler/leases/lost", len(reply))

    def _popped(self, reply, mono: float) -> None:
        s = self.s
        if isinstance(reply, Exception):
            logger.warning("Popping from the shared queue failed: %s", reply)
            return
        expired, popped = s.queue.parse_pop(reply)
        s._inc("scheduler/leases/expired_returned", expired)
        if not popped:
            self.poll_delay = min(s.poll_max, max(s.poll_min, self.poll_delay * 2))
            self.next_poll = mono + self.poll_delay
            return
        self.poll_delay, self.next_poll, s.idle_since = 0.0, 0.0, None
        for lease, payload in popped:
            try:
                request = s.queue.decode(payload)
            except Exception:  # not ours to crawl (other keys?): its lease expires and it goes back
                logger.error("A request popped from the shared queue cannot be decoded", exc_info=True)
                s._inc("scheduler/undecodable")
                continue
            request.meta[LEASE] = lease
            s.held[lease] = "prefetched"
            s.prefetched.append(request)
        if s.starved:
            s.starved = False
            s._wake_engine_at(0)

    def _counted(self, replies: list, now: float, mono: float) -> None:
        s = self.s
        if any(isinstance(reply, Exception) for reply in replies):
            return
        self.want_counts = False
        counts, s.next_due = s.queue.parse_counts(replies)
        s.counts, s.counts_at = counts, mono
        if s.next_due is not None and len(s.prefetched) <= s.refill_at:  # pop when the first one is due
            self.next_poll = min(self.next_poll, mono + max(0.0, s.next_due - now) + 0.001)
        if not self.joined:
            self.joined = True
            if counts["queued"] or counts["delayed"] or counts["leased"]:
                logger.info(
                    "Joining shared job %s: %d queued, %d delayed, %d leased",
                    s.key,
                    counts["queued"],
                    counts["delayed"],
                    counts["leased"],
                )
        if mono - self.published_at >= s.ack_seconds:
            self.published_at = mono
            s._publish(counts)
        if s.idle_since is not None:  # the idle countdown reads these counts
            s._wake_engine_at(0)
