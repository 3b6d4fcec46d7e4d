"""SharedScheduler: one job's requests shared by any number of workers through Redis.

Built on scrapy-redis's Scheduler (connection, serialisation), with what it lacks:

- **Leases, not destructive pops** (lease_queue.py). A request is acknowledged
  when Scrapy has finished with its response: the callback (or errback) ran,
  every item it produced went through the item pipelines, and the rows those
  pipelines buffered in the BulkWriter are committed (the scheduler flushes the
  writer before acking). A callback that raises is finished too (Scrapy logged
  it; crawling it again would raise again). A retry, redirect or deferral comes
  back to ``enqueue_request`` carrying its parent's lease: the replacement is
  queued and the parent acked in one Lua call. Leases are renewed every
  SCHEDULER_LEASE_SECONDS / 3; a worker that dies stops renewing, and any live
  worker returns its expired leases to the queue. At-least-once: a request may
  be crawled twice (a worker killed after its rows were committed but before the
  ack); the pipelines write idempotently, so rows are stored exactly once.
- **Priority**: higher ``Request.priority`` first, FIFO within one priority;
  SCHEDULER_JOB_PRIORITY (or spider argument ``job_priority``, e.g. from
  scrapyd's schedule.json) is added to every request of the job.
- **Deferred requests** (``defer_until`` meta, see deferring.py) wait in a
  shared delayed set, not in one worker's memory.
- **Shared state is never deleted while others work**: on close a worker
  returns its unfinished leases; only a worker closing with reason "finished"
  while nothing is queued, delayed or leased deletes the job's keys (the
  dupefilter included), unless SCHEDULER_PERSIST keeps them.
- **Idle**: polling backs off from SCHEDULER_POLL_MIN_SECONDS to
  SCHEDULER_POLL_MAX_SECONDS while the queue is empty; the spider closes after
  SCHEDULER_IDLE_CLOSE_SECONDS with nothing queued, delayed or leased anywhere
  (0 = never).

- **Never a network wait on the reactor.** Scrapy's scheduler interface is
  synchronous, so the scheduler only works on local buffers: ``next_request``
  hands out a prefetch buffer (SCHEDULER_PREFETCH leased requests) or returns
  None, ``enqueue_request`` buffers the push, ``has_pending_requests`` reads the
  buffers and counts refreshed in the background. One asyncio task (pump.py)
  does all Redis I/O, batching pushes, acks, renewals, the refill and the counts
  in one pipeline per tick, and wakes the engine when requests arrive.

Requests that cannot be serialised (a callback that is not a spider method, meta
that does not pickle) stay in this worker's memory, unleased, with a warning.
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import importlib
import itertools
import logging
import time
import uuid
from collections import deque

import orjson
import redis
import redis.asyncio
from scrapy import signals
from scrapy_redis import picklecompat
from scrapy_redis.scheduler import Scheduler as RedisScheduler

from crawler.scheduling.deferring import DEFER_REASON, DEFER_UNTIL, DeferringScheduler, wake_engine
from crawler.scheduling.dupefilter import BloomDupeFilter, RedisDupeFilter
from crawler.scheduling.lease_queue import LeaseQueue
from crawler.scheduling.pump import LEASE, Pump, Push
from crawler.scheduling.sealed import SealedSerializer

logger = logging.getLogger(__name__)

__all__ = ["LEASE", "SharedScheduler", "job_id", "job_key"]


def job_id(settings, spider) -> str:
    """Which shared job a worker joins. SCHEDULER_JOB names one explicitly; otherwise a spider
    with a scan joins its scan, and any other spider the job of its exact arguments (a digest the
    ``crawl`` command computes; ``spider_arguments`` for crawls started in-process): workers
    started with the same command share the work, while two crawls with different arguments
    never mix their requests (their callbacks would run with the other crawl's spider state)."""
    if explicit := settings.get("SCHEDULER_JOB"):
        return f"{spider.name}:{explicit}"
    if (scan := getattr(spider, "scan", None)) is not None:
        return f"{spider.name}:{scan.scan_id}"
    digest = settings.get("SCHEDULER_JOB_ARGUMENTS")
    if not digest:
        arguments = {k: v for k, v in (getattr(spider, "spider_arguments", None) or {}).items() if k != "job_priority"}
        if arguments:
            digest = hashlib.sha256(orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:12]
    return f"{spider.name}:{digest}" if digest else spider.name


def job_key(settings, spider) -> str:
    values = {"prefix": settings.get("REDIS_KEY_PREFIX") or "", "spider": spider.name, "job": job_id(settings, spider)}
    return settings.get("SCHEDULER_KEY") % values


class SharedScheduler(RedisScheduler):
    supports_deferral = True  # crawler.scheduling.deferring.defer() hands requests to us

    def __init__(self, server, crawler, aio=None, **kwargs):
        super().__init__(server, persist=crawler.settings.getbool("SCHEDULER_PERSIST"), **kwargs)
        settings = crawler.settings
        self.crawler = crawler
        self.stats = crawler.stats
        self.aio = aio  # redis.asyncio client: every call while crawling goes through it (pump.py)
        self.token = f"{uuid.uuid4().hex[:12]}"
        self.lease_seconds = settings.getfloat("SCHEDULER_LEASE_SECONDS")
        self.renew_seconds = max(0.05, self.lease_seconds / 3)
        self.ack_seconds = settings.getfloat("SCHEDULER_ACK_SECONDS")
        self.idle_close = settings.getfloat("SCHEDULER_IDLE_CLOSE_SECONDS")
        self.poll_min = settings.getfloat("SCHEDULER_POLL_MIN_SECONDS")
        self.poll_max = settings.getfloat("SCHEDULER_POLL_MAX_SECONDS")
        self.bloom = settings.getbool("SCHEDULER_DUPEFILTER_BLOOM")
        # lease id -> "prefetched" | "downloading" | "replacing" (its replacement's push is under way)
        #             | "scraping" | "done" (to ack)
        self.held: dict[str, str] = {}
        self.to_ack: list[str] = []
        self.releasing: set[str] = set()  # finished leases to return to the queue, not ack (flush_acks)
        # requests that cannot be shared: (due time, sequence, request), a heap, so a deferred one
        # (backoff, Retry-After, a paused key) still waits here until it is due
        self.local: list[tuple[float, int, object]] = []
        self._local_sequence = itertools.count()
        # leased in the background, handed to the engine one by one; refilled below half
        self.prefetched: deque = deque()
        # half the download slots: more would let one worker lease every chain of a shared job (an events
        # ingestion's partitions) and leave the others idle; measured 0.90-0.94 of the in-memory scheduler
        # for one worker at 1x-3x CONCURRENT_REQUESTS, so the buffer's size matters little for speed
        self.prefetch = settings.getint("SCHEDULER_PREFETCH") or max(1, settings.getint("CONCURRENT_REQUESTS") // 2)
        self.refill_at = self.prefetch // 2
        self.starved = False  # next_request found the buffer empty: wake the engine when it refills
        self.idle_since: float | None = None
        self.next_due: float | None = None  # when the first shared deferred request is due
        self.counts: dict[str, int] = {"queued": 0, "delayed": 0, "leased": 0}
        self.counts_at = 0.0  # monotonic time of the last read (0: never)
        self.pump: Pump | None = None
        self._ack_task: asyncio.Task | None = None
        self._stopping: asyncio.Future | None = None
        self._wakeup: asyncio.TimerHandle | None = None
        self._original_enqueue_scrape = None

    @classmethod
    def from_crawler(cls, crawler):
        settings = crawler.settings
        if not settings.get("REDIS_URL"):  # `-s REDIS_URL=` overrides the environment's choice
            return DeferringScheduler.from_crawler(crawler)
        timeout = settings.getfloat("REDIS_CONNECT_TIMEOUT")
        url = settings.get("REDIS_URL")
        server = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        server.ping()  # once, before the crawl starts: a wrong REDIS_URL fails at once
        aio = redis.asyncio.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        serializer = settings.get("SCHEDULER_SERIALIZER")
        if isinstance(serializer, str):
            serializer = importlib.import_module(serializer)
        inner = serializer or picklecompat  # scrapy-redis's default
        return cls(server, crawler, aio=aio, serializer=SealedSerializer.for_settings(inner, settings))

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self, spider):
        self.spider = spider
        self.key = job_key(self.crawler.settings, spider)
        # scrapyd passes its form fields as spider arguments: -d job_priority=N
        self.job_priority = int(
            getattr(spider, "job_priority", None) or self.crawler.settings.getint("SCHEDULER_JOB_PRIORITY")
        )
        self.queue = LeaseQueue(
            self.server,
            spider,
            self.key,
            serializer=self.serializer,
            token=self.token,
            lease_seconds=self.lease_seconds,
        )
        self.queue.bind_async(self.aio)
        dupefilter_cls = BloomDupeFilter if self.bloom else RedisDupeFilter
        self.df = dupefilter_cls.for_scheduler(self.server, f"{self.key}:dupefilter", self.crawler)
        self.df.bind_async(self.aio)
        # the ack must follow the response's whole processing: Scrapy's scraper returns a
        # Deferred that fires exactly then (callback output and item pipelines included)
        scraper = self.crawler.engine.scraper
        self._original_enqueue_scrape = scraper.enqueue_scrape
        scraper.enqueue_scrape = self._enqueue_scrape
        loop = asyncio.get_event_loop()
        self._stopping = loop.create_future()
        self.pump = Pump(self)
        self.pump.start()
        self._ack_task = loop.create_task(self._ack_forever())

    def close(self, reason):
        from scrapy.utils.defer import deferred_from_coro

        return deferred_from_coro(self._close(reason))

    async def _close(self, reason):
        self.pump.closing = True  # from now on an unreachable Redis keeps pushes in memory at once: a bounded close
        if not self._stopping.done():
            self._stopping.set_result(None)
        await asyncio.gather(self._ack_task, return_exceptions=True)  # let an ack under way finish
        if self._wakeup is not None:
            self._wakeup.cancel()
        if self._original_enqueue_scrape is not None:
            self.crawler.engine.scraper.enqueue_scrape = self._original_enqueue_scrape
        await self.flush_acks()  # after the pushes they wait for
        await self.pump.pushed()  # whatever is still buffered (or kept in memory if Redis is down)
        await self.pump.stop()
        try:
            released = await self.release_leases()
            if released:
                logger.info("Returned %d unfinished lease(s) to the shared queue (%s)", released, reason)
            if reason == "finished" and not self.persist and await self.queue.acleanup(await self.df.akeys()):
                logger.info("Shared job %s finished: its queue and dupefilter are deleted", self.key)
        except Exception as exc:  # Redis down: the leases expire and go back by themselves
            logger.warning("Returning leases at close failed (%s): they return when they expire", type(exc).__name__)
        if self.local:  # their parents' leases were not acked: they return to the queue, then these again
            logger.warning(
                "%d request(s) kept in memory (unshareable, or Redis unreachable) left at close", len(self.local)
            )
        self.server.close()
        await self.aio.aclose()

    async def release_leases(self) -> int:
        """Return every lease this worker still holds (prefetched ones included) to the queue."""
        self.prefetched.clear()
        ids = [lease for lease, state in self.held.items() if state != "done"]
        released = await self.queue.arelease(ids) if ids else 0
        for lease in ids:
            self.held.pop(lease, None)
        self._inc("scheduler/leases/released", released)
        return released

    # -- enqueue / dequeue ---------------------------------------------------------------------------
    def enqueue_request(self, request) -> bool:
        """Buffer the push; the pump queues it in Redis in the background (pump.py).

        Returns True optimistically for a request to filter: the dupefilter is checked in
        the same Lua step as the push, so one that another worker (or this one) queued
        before is counted in ``dupefilter/filtered`` and sent with Scrapy's
        ``request_dropped`` signal when the push reports it (``_filtered``), and never
        queued twice."""
        lease = request.meta.pop(LEASE, None)
        # a request carrying a lease still downloading replaces it (retry, redirect, deferral);
        # one whose lease is being scraped is a new request from the callback
        replaces = lease if lease is not None and self.held.get(lease) == "downloading" else ""
        until = request.meta.get(DEFER_UNTIL)
        if until is not None and until <= time.time():
            request.meta.pop(DEFER_UNTIL, None)
            until = None
        try:
            payload = self.queue.encode(request)
        except Exception as exc:  # anything to_dict or the serializer refuses
            self._keep_local(request, replaces, exc)
            return True
        seen = late = None
        if not request.dont_filter:
            seen = self.df.atomic_seen(request)
            late = None if seen is not None else self.df.request_fingerprint(request)
        if replaces:
            self.held[replaces] = "replacing"  # still renewed; acked by the push
        self.pump.add(
            Push(request, payload, -(request.priority + self.job_priority), until or 0.0, replaces, seen, late)
        )
        if until is not None:
            self._inc(f"scheduler/deferred/{request.meta.get(DEFER_REASON, 'other')}")
        self.idle_since = None
        return True

    def next_request(self):
        if self.local:
            due = self.local[0][0] - time.time()
            if due <= 0:
                request = heapq.heappop(self.local)[2]
                request.meta.pop(DEFER_UNTIL, None)
                lease = request.meta.get(LEASE)  # a spilled replacement (_spill) carries its parent's lease
                if lease is not None and self.held.get(lease) == "replacing":
                    self.held[lease] = "downloading"
                return request
            self._wake_engine_at(due)
        if not self.prefetched:
            self.starved = True
            self.pump.kick()
            return None
        request = self.prefetched.popleft()
        lease = request.meta[LEASE]
        if self.held.get(lease) == "prefetched":
            self.held[lease] = "downloading"
        if len(self.prefetched) <= self.refill_at:
            self.pump.kick()
        self._inc("scheduler/dequeued/redis")
        return request

    def busy(self) -> bool:
        """Anything queued, delayed or leased anywhere, or still in this worker's buffers."""
        if self.local or self.prefetched or self.held or self.to_ack or self.pump.pending:
            return True
        return bool(self.counts["queued"] or self.counts["delayed"] or self.counts["leased"])

    def has_pending_requests(self) -> bool:
        """Never a Redis call: local buffers, then the counts the pump keeps fresh."""
        if self.local or self.prefetched or self.held or self.to_ack or self.pump.pending:
            return True
        counts = self.counts
        if counts["queued"] or counts["delayed"] or counts["leased"]:
            self.idle_since = None
            if counts["queued"]:
                self.pump.poll_soon()
            return True
        return not self.idle_expired()

    def idle_expired(self) -> bool:
        """True once the shared job has been empty (nothing queued, delayed or leased) long enough to close."""
        if self.idle_close <= 0:
            return False
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        remaining = self.idle_close - (now - self.idle_since)
        if remaining > 0:
            self._wake_engine_at(min(remaining, self.poll_max))
            return False
        if self.counts_at < self.idle_since:  # not read since the countdown began: read them first
            self.pump.want_counts = True
            self.pump.kick()
            return False
        return True

    def shared_counts(self, max_age: float | None = None) -> dict[str, int]:
        """Queued / delayed / leased across all workers, as last read in the background (never waits);
        older than ``max_age`` (default SCHEDULER_POLL_MIN_SECONDS): a fresh read is asked for."""
        max_age = self.poll_min if max_age is None else max_age
        if time.monotonic() - self.counts_at > max_age and self.pump is not None:
            self.pump.want_counts = True
            self.pump.kick()
        return self.counts

    def __len__(self):
        counts = self.counts
        return len(self.local) + len(self.prefetched) + self.pump.pending + counts["queued"] + counts["delayed"]

    # -- acknowledgement ---------------------------------------------------------------------------
    def _enqueue_scrape(self, result, request):
        lease = request.meta.get(LEASE)
        if lease is not None and lease in self.held:
            self.held[lease] = "scraping"
        d = self._original_enqueue_scrape(result, request)
        if lease is not None:
            d.addBoth(self._scraped, lease)
        return d

    def _scraped(self, result, lease):
        self._finished(lease)
        return result

    def _finished(self, lease: str) -> None:
        if self.held.get(lease) in ("downloading", "replacing", "scraping"):
            self.held[lease] = "done"
            self.to_ack.append(lease)

    async def flush_acks(self) -> int:
        """Ack finished leases once the rows they produced are committed and the requests their
        callbacks produced are pushed. When some of those requests could only be kept in this
        worker's memory (Redis unreachable too long, pump.py ``spill``), the leases go back to the
        queue instead: crawled again, so a crash loses no child."""
        if not self.to_ack:
            return 0
        ids, self.to_ack = self.to_ack, []
        spilled = self.pump.spilled
        try:
            await self._commit_rows()
            await self.pump.pushed()  # every child was enqueued before its parent finished
            if self.pump.spilled != spilled:
                self.releasing.update(ids)  # kept across a failed release: never acked afterwards
            back = [lease for lease in ids if lease in self.releasing]
            ack = [lease for lease in ids if lease not in self.releasing]
            released = await self.pump.ack(back, release=True) if back else 0
            self.releasing.difference_update(back)
            acked = await self.pump.ack(ack) if ack else 0
        except BaseException as exc:  # also a cancellation: the ids must not be forgotten
            self.to_ack = [lease for lease in ids if lease in self.held] + self.to_ack  # retried; still renewed
            if not isinstance(exc, Exception):
                raise
            logger.warning("Acknowledging %d lease(s) failed; retrying", len(ids), exc_info=True)
            return 0
        for lease in ids:
            self.held.pop(lease, None)
        self._inc("scheduler/leases/released", released)
        self._inc("scheduler/leases/acked", acked)
        self._inc("scheduler/leases/lost", len(ack) - acked)  # expired meanwhile: another worker has them
        return acked

    async def _commit_rows(self) -> None:
        from crawler.db.writer import BulkWriter

        writer = BulkWriter.for_crawler(self.crawler)
        if writer.users > 0:  # open: rows buffered before now are committed when this returns
            await writer.flush()
        elif writer.buffered or writer.checkpoints or writer.on_commit:
            # closed with rows its last flush could not write (database down at close): the leases
            # must not be acked, they expire and another worker crawls them again
            raise RuntimeError(f"{writer.buffered} row(s) were never committed")

    async def _ack_forever(self) -> None:
        while not self._stopping.done():
            await asyncio.wait([self._stopping], timeout=self.ack_seconds)
            await self.flush_acks()

    def _publish(self, counts: dict) -> None:
        """Gauges in stats (read by crawler/observability/metrics.py)."""
        self.stats.set_value("scheduler/shared/queue_depth", counts["queued"])
        self.stats.set_value("scheduler/shared/delayed", counts["delayed"])
        self.stats.set_value("scheduler/shared/leases_outstanding", counts["leased"])
        self.stats.set_value("scheduler/leases/held", len(self.held))

    # -- helpers (the pump's too) ------------------------------------------------------------------
    def _filtered(self, push: Push) -> None:
        """The push found the request already seen: nothing queued, and its parent lease still ours to ack."""
        self._inc("dupefilter/filtered")
        self.df.log(push.request, self.spider)
        # enqueue_request returned True before the push could tell: the engine's signal is sent here
        self.crawler.signals.send_catch_log(signal=signals.request_dropped, request=push.request, spider=self.spider)
        if push.replaces:
            self._finished(push.replaces)

    def _keep_local(self, request, replaces: str, exc: BaseException) -> None:
        logger.warning(
            "Request cannot be shared (%s: %s); kept in this worker's memory", type(exc).__name__, str(exc)[:200]
        )
        self._inc("scheduler/unshareable")
        if replaces:
            self._finished(replaces)
        heapq.heappush(self.local, (request.meta.get(DEFER_UNTIL) or 0.0, next(self._local_sequence), request))
        self._wake_engine_at(0)

    def _spill(self, push: Push) -> None:
        """Redis did not take a push (pump.py ``spill``): keep it in memory. A replacement keeps its parent's
        lease (renewed, acked once the replacement is scraped, returned to the queue at close)."""
        if push.replaces:
            push.request.meta[LEASE] = push.replaces
        self._inc("scheduler/spilled")
        heapq.heappush(
            self.local, (push.request.meta.get(DEFER_UNTIL) or 0.0, next(self._local_sequence), push.request)
        )
        self._wake_engine_at(0)

    def _inc(self, key: str, count: int = 1) -> None:
        if count and self.stats is not None:
            self.stats.inc_value(key, count)

    def _wake_engine_at(self, delay: float) -> None:
        """Ask the engine for requests after ``delay`` (its own heartbeat polls only every 5 s)."""
        if self._wakeup is not None and self._wakeup.when() <= asyncio.get_event_loop().time() + delay:
            return
        if self._wakeup is not None:
            self._wakeup.cancel()
        self._wakeup = asyncio.get_event_loop().call_later(max(0.0, delay), self._wake_engine)

    def _wake_engine(self) -> None:
        self._wakeup = None
        wake_engine(self.crawler)
