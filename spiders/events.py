"""Ingest every event of a paginated, rate-limited, cursor-based events API, exactly once.

    scrapy crawl events -a base_url=URL [-a api_key=KEY] [-a since=T -a until=T] [-a partitions=K]
                        [-a id_field=NAME] [-a page_size=N] [-a source=NAME]

1. **Discover**: the first page tells the body shape (nested or flat), the id and
   time fields, the timestamp formats, the page cap and the total; logged once.
   The rate limiter reads the budget from the same response.
2. **Partition**: [since, until) is split into K ranges, each its own cursor
   chain, after a probe shows that the API honours ``since`` (asked from the
   first page's last timestamp, the answer must start there); otherwise one
   chain. The plan is stored before any page is fetched.
3. **Pages**: each page is one EventBatch through validate -> Bloom dedup ->
   COPY, its partition's checkpoint (cursor, last timestamp) committed in the
   same transaction as its rows. Truncated bodies, 5xx and 429 are retried by
   the middlewares; an expired cursor resumes its partition from the last
   timestamp seen. Running the same command again continues from the checkpoints.

With ``REDIS_URL`` set, requests go through the shared scheduler and come back
as copies, possibly to another worker of the same job: a request carries only
its partition's key and its chain position (cursor, last timestamp), and each
worker keeps what it knows of a partition by key. The discovery request is
filtered like any other, so one worker of the job discovers and plans; another
learns the id and time fields from the pages it gets. Progress lines say what
this worker fetched; the job's totals come from the checkpoints.

Times (``since``/``until``) are ISO-8601 or epoch milliseconds; ``until``
defaults to now. The key comes from ``-a api_key`` or the EVENTS_API_KEY
setting and is sent in API_KEY_HEADER (X-API-Key) to the API's host only. A scrapyd job refuses
``-a api_key`` (job arguments show in its queue, log and the process list): set EVENTS_API_KEY in
scrapyd's environment.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict
from urllib.parse import urlencode, urlsplit

import orjson
import psycopg
import scrapy
from scrapy.exceptions import CloseSpider

from crawler import normalize
from crawler.db.writer import Checkpoint
from crawler.ingest.api_shape import ID_FIELDS, TIME_FIELDS, Discovery, ShapeError, detect, read_page, timestamp_formats
from crawler.ingest.partitions import Partition, plan, store_plan, stored_partitions
from crawler.ingest.progress import Progress
from crawler.items import EventBatch
from crawler.spider_args import SpiderArgumentError, parse_http_url, refuse_job_arguments

logger = logging.getLogger(__name__)

EXPIRED = "CURSOR_EXPIRED"
# request meta: immutable values only (a shared scheduler hands the callback a copy)
PARTITION, CURSOR, POSITION, CURSOR_AT = "events_partition", "events_cursor", "events_position", "events_cursor_at"
PROBE = "events_probe"


def parse_time_ms(kwargs: dict, key: str) -> int | None:
    value = (kwargs.get(key) or "").strip()
    if not value:
        return None
    try:
        return int(normalize.timestamp(value).timestamp() * 1000)
    except ValueError as exc:
        raise SpiderArgumentError(key, f"expected ISO-8601 or epoch milliseconds ({exc})") from None


def parse_positive(kwargs: dict, key: str, default: int, most: int) -> int:
    value = str(kwargs.get(key) or default).strip()
    if not value.isdigit() or not 1 <= int(value) <= most:
        raise SpiderArgumentError(key, f"expected a whole number from 1 to {most}, got {value!r}")
    return int(value)


class EventsSpider(scrapy.Spider):
    name = "events"
    # a flaky API answers 5xx now and then: retry longer before giving up, open the circuit later
    retry_times = 8
    circuit_failure_threshold = 25
    # an exhausted page is recovered by running the spider again (checkpoints), not by replay
    replayable = False

    @classmethod
    def check_arguments(cls, kwargs: dict, settings=None) -> dict:
        refuse_job_arguments(kwargs)  # under scrapyd the key comes from EVENTS_API_KEY in its environment
        parsed = {
            "base_url": parse_http_url(
                kwargs, "base_url", (settings.get("EVENTS_BASE_URL") if settings else None) or None
            ),
            "since_ms": parse_time_ms(kwargs, "since"),
            "until_ms": parse_time_ms(kwargs, "until"),
            "partitions": parse_positive(kwargs, "partitions", 4, 256),
            "page_size": parse_positive(kwargs, "page_size", 5000, 100_000),
            "id_field": (kwargs.get("id_field") or "").strip() or None,
        }
        if (
            parsed["since_ms"] is not None
            and parsed["until_ms"] is not None
            and parsed["since_ms"] >= parsed["until_ms"]
        ):
            raise SpiderArgumentError("until", "must be later than since")
        key = kwargs.get("api_key") or (settings.get("EVENTS_API_KEY") if settings else None)
        if settings is not None and not key:
            raise SpiderArgumentError("api_key", "required (or set EVENTS_API_KEY)")
        parsed["api_key"] = key
        parsed["source"] = (kwargs.get("source") or "").strip() or urlsplit(parsed["base_url"]).netloc
        return parsed

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        kwargs["_parsed"] = cls.check_arguments(kwargs, crawler.settings)
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.progress = Progress(crawler.settings.getfloat("EVENTS_PROGRESS_SECONDS"))
        return spider

    def __init__(self, *args, _parsed: dict | None = None, **kwargs):
        parsed = _parsed or self.check_arguments(kwargs)
        for key in ("base_url", "api_key", "since", "until", "partitions", "page_size", "id_field", "source"):
            kwargs.pop(key, None)
        super().__init__(*args, **kwargs)
        self.base_url = parsed["base_url"].rstrip("/")
        self.api_key = parsed["api_key"]  # sent by AuthTokenMiddleware, to this host only
        self.allowed_domains = [urlsplit(self.base_url).hostname]
        self.since_ms, self.until_ms = parsed["since_ms"], parsed["until_ms"]
        self.partition_count, self.page_size = parsed["partitions"], parsed["page_size"]
        self.source = parsed["source"]
        self.discovery = Discovery(id_field=parsed["id_field"])
        self.partitions: dict[str, Partition] = {}  # what this worker knows of each, by key
        self.progress: Progress  # from_crawler: every EVENTS_PROGRESS_SECONDS
        self.took_part = False  # planned, or fetched a page: worth a final line
        self.plan_keys: set[str] = set()  # the whole plan, when this worker made or resumed it

    # --- requests ------------------------------------------------------------------

    def api_request(self, params: dict, callback, meta: dict | None = None, dont_filter: bool = True):
        return scrapy.Request(
            f"{self.base_url}/events?{urlencode(params)}",
            callback=callback,
            dont_filter=dont_filter,
            meta={
                "ratelimit_key": f"events:{self.source}",
                "expect_json": True,
                "handle_httpstatus_list": [400, 401, 403, 410],
                **(meta or {}),
            },
        )

    def page_request(self, partition: Partition, cursor: str | None, position_ms: int | None) -> scrapy.Request:
        if cursor:
            params = {"limit": self.page_size, "cursor": cursor}
        else:
            # a chain without a cursor asks for its own range; an API that ignores ranges has one
            # chain, over everything, and ignores them harmlessly
            params = {"limit": self.page_size, "since": partition.resume_since(position_ms)}
            params["until"] = partition.until_ms
        meta = {PARTITION: partition.key, CURSOR: cursor, POSITION: position_ms, CURSOR_AT: time.time()}
        return self.api_request(params, self.parse_page, meta)

    def partition(self, key: str) -> Partition:
        """This worker's record of a partition: another worker may have planned it."""
        if key not in self.partitions:
            self.partitions[key] = Partition.from_key(key)
        return self.partitions[key]

    async def start(self):
        params = {"limit": self.page_size}
        if self.since_ms is not None:
            params["since"] = self.since_ms
        if self.until_ms is not None:
            params["until"] = self.until_ms
        # filtered: several workers of one job (same arguments) share the dupefilter, so one discovers and
        # plans. A dupefilter kept after its job (SCHEDULER_PERSIST) would filter the next run's discovery
        # and leave it nothing to do: then every run discovers (partitions come from the checkpoints)
        persist = self.settings.getbool("SCHEDULER_PERSIST") and bool(self.settings.get("REDIS_URL"))
        yield self.api_request(params, self.parse_discovery, dont_filter=persist)

    # --- discovery ------------------------------------------------------------------

    def body(self, response) -> dict:
        # taken, not read: the response outlives the page's trip through the pipelines, its parsed
        # events need not (memory stays flat while the writer applies backpressure)
        data = response.meta.pop("parsed_json", None)
        return data if data is not None else orjson.loads(response.body)

    def api_error(self, response) -> str:
        try:
            error = self.body(response).get("error") or {}
            return error.get("code") or "?" if isinstance(error, dict) else str(error)
        except (orjson.JSONDecodeError, AttributeError):
            return "?"

    def event_ms(self, event: dict) -> int | None:
        try:
            return int(normalize.timestamp(event[self.discovery.time_field]).timestamp() * 1000)
        except (KeyError, TypeError, ValueError):
            return None

    async def parse_discovery(self, response):
        if response.status != 200:
            raise CloseSpider(
                f"events API answered {response.status} ({self.api_error(response)}) to the first request"
            )
        try:
            page = read_page(self.body(response))
        except ShapeError as exc:
            raise CloseSpider(f"events API: unexpected body ({exc})") from None
        found = self.discovery
        first = page.events[0] if page.events else {}
        found.nested, found.total = page.nested, page.total
        found.id_field = found.id_field or detect(first, ID_FIELDS)
        found.time_field = detect(first, TIME_FIELDS)
        found.formats = timestamp_formats(page.events, found.time_field) if found.time_field else []
        if page.has_more and len(page.events) < self.page_size:
            found.page_cap = len(page.events)  # the server capped our limit silently
            self.page_size = found.page_cap
        if not page.events:
            logger.info("events API: nothing in the requested range")
            return
        if found.id_field is None or found.time_field is None:
            raise CloseSpider("events API: cannot tell the id or timestamp field; pass -a id_field=...")
        since = self.since_ms if self.since_ms is not None else self.event_ms(first)
        until = self.until_ms if self.until_ms is not None else int(time.time() * 1000) + 1
        last = next((ms for ms in map(self.event_ms, reversed(page.events)) if ms is not None), None)
        if self.partition_count > 1 and page.has_more and last is not None and last > since:
            # does the API honour since? ask from the first page's last timestamp: the answer
            # must start there (not at the beginning again, not empty). The probe may reach
            # another worker: it carries what was discovered.
            probe = {"point": last, "since": since, "until": until, "discovery": asdict(found)}
            yield self.api_request({"limit": 1, "since": last, "until": until}, self.parse_range_probe, {PROBE: probe})
        else:
            async for request in self.begin(since, until):
                yield request

    async def parse_range_probe(self, response):
        probe_meta = response.meta[PROBE]
        self.discovery = Discovery(**probe_meta["discovery"])
        self.page_size = self.discovery.page_cap or self.page_size
        point, since = probe_meta["point"], probe_meta["since"]
        probe = read_page(self.body(response)) if response.status == 200 else None
        first = probe.events[0] if probe and probe.events else None
        self.discovery.ranges = first is not None and (self.event_ms(first) or 0) >= point
        total, after = self.discovery.total, probe.total if probe else None
        data_end = None
        if self.discovery.ranges and total and after is not None and total > after:
            # the events before the probe point tell roughly where they end (a default
            # "until" of now may lie far beyond): partitions share the data, not empty time
            data_end = point + int((point - since) * after / (total - after)) + 1
        async for request in self.begin(since, probe_meta["until"], data_end):
            yield request

    async def begin(self, since: int, until: int, data_end: int | None = None):
        count = self.partition_count if self.discovery.ranges else 1
        stored = await stored_partitions(self.settings, self.source)
        if not stored:
            partitions = plan(since, until, count, data_end)
            await store_plan(self.settings, self.source, partitions)
        else:  # resume the earlier plan; newer events (after its end) get partitions of their own
            partitions, end = stored, max(p.until_ms for p in stored)
            if until > end and all(p.completed for p in stored):
                added = plan(end, until, count if until - end > 3_600_000 else 1)
                await store_plan(self.settings, self.source, added)
                partitions += added
        self.partitions.update((p.key, p) for p in partitions)
        self.plan_keys = {p.key for p in partitions}
        self.took_part = True
        committed = sum(p.committed_before for p in partitions)
        logger.info("events API: %s", self.discovery.describe())
        pending = [p for p in partitions if not p.completed]
        logger.info(
            "events: %d partition(s), %d to do; %d event(s) committed by earlier runs",
            len(partitions),
            len(pending),
            committed,
        )
        for partition in pending:
            yield self.page_request(partition, partition.cursor, partition.position_ms)

    # --- pages ---------------------------------------------------------------------

    def learn_fields(self, events: list) -> None:
        """A worker that did not discover (another of the job did) learns the fields from a page."""
        if self.discovery.time_field is None and events:
            self.discovery.id_field = self.discovery.id_field or detect(events[0], ID_FIELDS)
            self.discovery.time_field = detect(events[0], TIME_FIELDS)

    async def parse_page(self, response):
        partition = self.partition(response.meta[PARTITION])
        cursor_in, position_ms = response.meta[CURSOR], response.meta[POSITION]
        if response.status != 200:
            code = self.api_error(response)
            if code != EXPIRED:
                self.crawler.stats.inc_value(f"events/partition_failed/{code}")
                logger.error(
                    "events partition %s stopped: API answered %d %s (run again to resume)",
                    partition.key,
                    response.status,
                    code,
                )
                return
            self.crawler.stats.inc_value("events/cursor_expired")
            logger.info(
                "events partition %s: cursor expired after %.0fs; resuming from its last timestamp",
                partition.key,
                time.time() - response.meta[CURSOR_AT],
            )
            yield self.page_request(partition, None, position_ms)
            return
        page = read_page(self.body(response))
        self.learn_fields(page.events)
        if page.has_more and not page.next_cursor:
            self.crawler.stats.inc_value("events/partition_failed/NO_CURSOR")
            logger.error(
                "events partition %s stopped: hasMore without a nextCursor (run again to resume)", partition.key
            )
            return
        if partition.total is None and page.total is not None and cursor_in is None and position_ms is None:
            # a chain's first page: its meta.total counts the whole partition
            partition.total = page.total
        last_ms = next((ms for ms in map(self.event_ms, reversed(page.events)) if ms is not None), None)
        if last_ms is not None:
            position_ms = last_ms
        cursor = page.next_cursor if page.has_more else None
        partition.fetched += len(page.events)
        partition.completed = not page.has_more
        self.took_part = True
        self.progress.add(len(page.events))
        checkpoint = Checkpoint(
            self.source,
            partition.key,
            cursor=cursor,
            position_at=dt.datetime.fromtimestamp(last_ms / 1000, dt.UTC) if last_ms is not None else None,
            rows=len(page.events),
            completed=partition.completed,
        )
        self.crawler.stats.inc_value("events/pages")
        self.crawler.stats.inc_value("events/fetched", len(page.events))
        if partition.completed:  # counters, so a shared job's stats add up over its workers
            self.crawler.stats.inc_value("events/partitions_done")
        yield EventBatch(
            self.source,
            page.events,
            id_field=self.discovery.id_field,
            time_field=self.discovery.time_field,
            checkpoint=checkpoint,
        )
        if page.has_more:
            yield self.page_request(partition, cursor, position_ms)
        if self.progress.due():
            await self.log_progress()
        if partition.completed and self.plan_complete():
            # nothing left to fetch: close now (the pages in the pipelines are committed first) rather
            # than after the scheduler's idle timeout, which waits for requests that cannot come
            logger.info("events: every partition of the plan is complete")
            raise CloseSpider("finished")

    def plan_complete(self) -> bool:
        """This worker made (or resumed) the plan and saw each partition's last page."""
        return bool(self.plan_keys) and all(self.partitions[key].completed for key in self.plan_keys)

    async def log_progress(self, final: bool = False) -> None:
        """One progress line: this worker's figures, and the job's from its checkpoints."""
        job = await stored_partitions(self.settings, self.source)
        for partition in job:
            partition.total = self.partitions[partition.key].total if partition.key in self.partitions else None
        self.progress.log(job, self.discovery.total, final=final)

    async def closed(self, reason):
        if not self.took_part:
            return
        try:
            # after the pipelines closed: every row this worker fetched is committed, or never will be
            await self.log_progress(final=True)
        except psycopg.Error as exc:  # the crawl's outcome stands; only the summary is lost
            logger.warning("events: no final progress line (%s)", type(exc).__name__)
