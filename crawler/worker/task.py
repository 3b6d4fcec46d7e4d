"""The ``run_scan`` job: one crawl of a scan, and what its end means for the scan.

Job states map onto the scan: the crawl sets it ``running`` and, when it closes, ``completed``,
``failed`` (every site failed) or ``cancelled`` (SIGTERM). A crawl that ends without closing its
scan (crashed, killed, database unreachable) is a transient failure: the scan goes back to
``pending`` with the reason and the job is retried with exponential backoff, until the
``SCAN_MAX_ATTEMPTS``-th crawl, after which the scan is ``failed`` with that reason. Reasons name
the attempt and an exit code, never anything about the person.
"""

from __future__ import annotations

import asyncio
import logging

import httpx
import procrastinate
import psycopg
from procrastinate.exceptions import JobAborted
from procrastinate.job_context import AbortReason
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from crawler.config import flag
from crawler.db.embedded import database_url
from crawler.store import jobs
from crawler.worker import removal_jobs
from crawler.worker.crawl import LocalCrawl
from crawler.worker.forkserver import ForkServer
from crawler.worker.scrapyd import ScrapydCrawl, ScrapydError, node_urls
from crawler.worker.shared_browser import SharedBrowser

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
CANCEL_CHECK_EVERY = 5  # polls between reads of the scan's cancel_requested_at (the job's abort flag is pushed)
STOP_GRACE_SECONDS = 120.0  # a stopped crawl drains for at most this long, then is killed


class CrawlCrashed(Exception):
    """The crawl ended without finishing its scan: retried with backoff."""


class ScanHandedBack(Exception):
    """The worker is shutting down: the scan went back to ``pending``, retried at once elsewhere."""


class ScanFailed(Exception):
    """The last attempt crashed too: the scan is ``failed`` and the job is not retried."""


class ScanRetry(BaseRetryStrategy):
    """Backoff ``base * 2**retries`` for transient failures; the attempt count that matters is
    ``scans.attempts`` (the task raises ScanFailed on the last one), ``cap`` only bounds job retries
    (stalled-job recoveries count there too)."""

    TRANSIENT = (CrawlCrashed, ScrapydError, httpx.HTTPError, psycopg.OperationalError, OSError)

    def __init__(self, base_seconds: float, cap: int):
        self.base_seconds = base_seconds
        self.cap = cap

    def get_retry_decision(self, *, exception: BaseException, job) -> RetryDecision | None:
        if isinstance(exception, ScanHandedBack):
            return RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, self.TRANSIENT) and job.attempts < self.cap:
            return RetryDecision(retry_in={"seconds": self.base_seconds * 2 ** min(job.attempts, 12)})
        return None


class ScanRun:
    """One attempt: claim, crawl (watching for cancel), then settle the scan's status."""

    def __init__(self, settings, context, scan_id: str, fork_server=None, browser=None):
        self.settings = settings
        self.context = context
        self.scan_id = str(scan_id)
        self.max_attempts = settings.getint("SCAN_MAX_ATTEMPTS")
        urls = node_urls(settings.get("SCRAPYD_URLS"))
        self.crawl = (
            ScrapydCrawl(self.scan_id, urls)
            if urls
            else LocalCrawl(self.scan_id, fork_server=fork_server, browser=browser)
        )

    async def run(self) -> str:
        attempt = await jobs.claim_attempt(self.settings, self.scan_id)
        if attempt is None:
            logger.info("scan %s: nothing to run (finished, cancelled or missing)", self.scan_id)
            return "skipped"
        try:
            await self.crawl.start()
        except ScanRetry.TRANSIENT as exc:
            return await self.crashed(attempt, f"crawl not started ({type(exc).__name__})")
        try:
            code = await self.watch()
        except asyncio.CancelledError:
            await self.interrupted(attempt)
            raise  # not reached: interrupted() raises
        return await self.settle(attempt, code)

    async def watch(self) -> int:
        polls = 0
        while (code := await self.crawl.wait(POLL_SECONDS)) is None:
            polls += 1
            if polls % CANCEL_CHECK_EVERY == 0:
                state = await jobs.scan_state(self.settings, self.scan_id)
                if state is not None and state[1]:
                    await self.crawl.stop()
        return code

    async def stop_and_wait(self) -> None:
        await self.crawl.stop()
        waited = 0.0
        while await self.crawl.wait(POLL_SECONDS) is None:
            waited += POLL_SECONDS
            if waited >= STOP_GRACE_SECONDS:
                await self.crawl.kill()

    async def interrupted(self, attempt: int) -> None:
        """The job was aborted: a cancel (the scan ends ``cancelled``) or the worker's shutdown
        timeout (the scan is handed back to the queue)."""
        reason = self.context.abort_reason() if self.context is not None else None
        await asyncio.shield(self.stop_and_wait())
        if reason == AbortReason.SHUTDOWN:
            await jobs.end_unfinished(self.settings, self.scan_id, "pending", f"attempt {attempt}: worker shut down")
            logger.info("scan %s: handed back to the queue", self.scan_id)
            raise ScanHandedBack(self.scan_id)
        await jobs.end_unfinished(self.settings, self.scan_id, "cancelled", None)
        logger.info("scan %s: cancelled", self.scan_id)
        raise JobAborted(self.scan_id)

    async def settle(self, attempt: int, code: int) -> str:
        state = await jobs.scan_state(self.settings, self.scan_id)
        if state is None:
            raise ScanFailed(f"scan {self.scan_id} vanished")
        status, cancel_requested = state
        if status in jobs.FINAL_STATUSES:
            logger.info("scan %s: %s", self.scan_id, status)
            if status == "completed":
                await self.reconcile()
            return status
        if cancel_requested:
            await jobs.end_unfinished(self.settings, self.scan_id, "cancelled", None)
            return "cancelled"
        return await self.crashed(attempt, self.crawl.describe_exit(code))

    async def reconcile(self) -> None:
        """The removal requests follow the scan (reappearances become new requests). A failure here
        must not fail the scan, which is done: it is logged, and the next scan of the person
        reconciles again."""
        try:
            await removal_jobs.after_scan(self.settings, self.scan_id)
        except Exception as exc:
            logger.warning("scan %s: removal reconciliation failed (%s)", self.scan_id, type(exc).__name__)

    async def crashed(self, attempt: int, what: str) -> str:
        reason = f"attempt {attempt}: {what}"
        if attempt >= self.max_attempts:
            await jobs.end_unfinished(self.settings, self.scan_id, "failed", reason)
            logger.warning("scan %s: failed (%s)", self.scan_id, reason)
            raise ScanFailed(reason)
        await jobs.end_unfinished(self.settings, self.scan_id, "pending", reason)
        logger.warning("scan %s: will be retried (%s)", self.scan_id, reason)
        raise CrawlCrashed(reason)


def create_app(settings) -> procrastinate.App:
    """The procrastinate app on the project's database with the ``run_scan`` task and the removal
    jobs (crawler/worker/removal_jobs.py)."""
    concurrency = settings.getint("WORKER_CONCURRENCY")
    connector = procrastinate.PsycopgConnector(
        conninfo=database_url(settings),
        min_size=1,
        max_size=concurrency + 3,  # the LISTEN connection, heartbeats, fetches, the jobs' finish
        kwargs={"application_name": "crawler-worker"},
    )
    app = procrastinate.App(connector=connector)
    retry = ScanRetry(settings.getfloat("SCAN_RETRY_SECONDS"), cap=settings.getint("SCAN_MAX_ATTEMPTS") * 3)
    fork_server = app.fork_server = ForkServer() if flag(settings, "WORKER_FORKSERVER") else None
    shared = flag(settings, "WORKER_SHARED_BROWSER") and not settings.get("SCRAPYD_URLS")
    browser = app.shared_browser = SharedBrowser(settings) if shared else None

    @app.task(name=jobs.TASK, queue=jobs.QUEUE, pass_context=True, retry=retry)
    async def run_scan(context, scan_id: str) -> str:
        return await ScanRun(settings, context, scan_id, fork_server, browser).run()

    removal_jobs.register(app, settings)

    return app
