"""One scan's crawl on a scrapyd node (``SCRAPYD_URLS``) instead of a local child process.

``schedule.json`` gets the project, the spider and the scan id, nothing else: scrapyd keeps its
arguments in its queue, its log and the process list, so the person (encrypted in ``scans``) and
any secret (scrapyd's environment) never go there. The node with the fewest jobs is chosen; the
job id starts with the scan id, so that a retry first kills the scan's earlier jobs still on a
node (a worker SIGKILLed mid-scan leaves its crawl there). ``listjobs.json`` tells when the job
ended, ``cancel.json`` stops it (SIGTERM once: the crawl drains and ends its scan ``cancelled``;
a pending job just leaves scrapyd's queue), or kills it. A node that stops answering for
``UNREACHABLE_SECONDS`` ends the attempt (retried, as a crashed crawl). Basic-auth credentials
may be in a node's URL (user:pass@host); logs show it without them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx
from scrapy.utils.conf import get_config

logger = logging.getLogger(__name__)
# httpx logs every request at INFO: a poll a second of listjobs.json would drown the worker's log
logging.getLogger("httpx").setLevel(logging.WARNING)

SPIDER = "scan"
TIMEOUT = 30.0
UNREACHABLE_SECONDS = 120.0
EARLIER_JOBS_SECONDS = 30.0  # for a killed earlier job of the scan to leave scrapyd's running jobs
VANISHED, UNREACHABLE = -1, -2  # wait()'s codes besides 0 (finished)


class ScrapydError(RuntimeError):
    """No node accepted the job, or a node answered with an error (transient: the scan is retried)."""


def project_name() -> str:
    """The project scrapyd-deploy uploads (scrapy.cfg ``[deploy] project``), "crawler" by default."""
    config = get_config()
    for section in ("deploy", *[s for s in config.sections() if s.startswith("deploy:")]):
        if config.has_option(section, "project"):
            return config.get(section, "project")
    return "crawler"


def node_urls(value: str) -> list[str]:
    return [url.strip().rstrip("/") + "/" for url in str(value or "").split(",") if url.strip()]


def _client(url: str) -> tuple[httpx.AsyncClient, str]:
    """A client with the URL's credentials as basic auth, and the URL without them (for logs)."""
    parts = urlsplit(url)
    auth = (parts.username or "", parts.password or "") if parts.username else None
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    return httpx.AsyncClient(base_url=bare, auth=auth, timeout=TIMEOUT), bare


async def _json(client: httpx.AsyncClient, method: str, path: str, **kwargs) -> dict:
    response = await client.request(method, path, **kwargs)
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "ok":
        raise ScrapydError(f"{path}: {str(body.get('message', 'error'))[:200]}")
    return body


class ScrapydCrawl:
    """The scan scheduled on the least busy scrapyd node, then followed there."""

    def __init__(self, scan_id: str, urls: list[str], project: str | None = None):
        self.scan_id = scan_id
        self.urls = urls
        self.project = project or project_name()
        self.client: httpx.AsyncClient | None = None
        self.node = ""
        self.job = ""
        self.stopping = False
        self.unreachable_since: float | None = None

    async def _load(self, client: httpx.AsyncClient) -> int:
        status = await _json(client, "GET", "daemonstatus.json")
        return int(status.get("running", 0)) + int(status.get("pending", 0))

    def job_id(self) -> str:
        """The scan id and a random suffix: scrapyd's job id tells which scan a job crawls."""
        return f"{self.scan_id}-{uuid.uuid4().hex[:12]}"

    async def _end_earlier_jobs(self, client: httpx.AsyncClient, bare: str) -> None:
        """Kill this scan's jobs still pending or running on the node: left by a worker that died
        (SIGKILL) mid-scan, whose crawl would otherwise race with this attempt's (a local crawl
        dies with its worker; one on scrapyd does not)."""
        deadline = time.monotonic() + EARLIER_JOBS_SECONDS
        while True:
            jobs = await _json(client, "GET", "listjobs.json", params={"project": self.project})
            earlier = [
                job["id"]
                for key in ("pending", "running")
                for job in jobs.get(key, [])
                if str(job.get("id", "")).startswith(f"{self.scan_id}-")
            ]
            if not earlier:
                return
            if time.monotonic() > deadline:
                raise ScrapydError(f"an earlier job of the scan still runs on {bare}")
            for job in earlier:
                logger.warning("scan %s: killing its earlier scrapyd job %s on %s", self.scan_id, job, bare)
                await _json(client, "POST", "cancel.json", data={"project": self.project, "job": job, "signal": "KILL"})
            await asyncio.sleep(0.5)

    async def start(self) -> None:
        candidates = []
        for url in self.urls:
            client, bare = _client(url)
            try:
                await self._end_earlier_jobs(client, bare)
                candidates.append((await self._load(client), bare, client))
            except (httpx.HTTPError, ScrapydError, ValueError) as exc:
                logger.warning("scrapyd %s unavailable (%s)", bare, type(exc).__name__)
                await client.aclose()
        if not candidates:
            raise ScrapydError("no scrapyd node answered")
        candidates.sort(key=lambda c: c[0])
        for _, _, client in candidates[1:]:
            await client.aclose()
        _, self.node, self.client = candidates[0]
        body = await _json(
            self.client,
            "POST",
            "schedule.json",
            data={"project": self.project, "spider": SPIDER, "scan_id": self.scan_id, "jobid": self.job_id()},
        )
        self.job = body["jobid"]
        logger.info("scan %s: scheduled on scrapyd %s as job %s", self.scan_id, self.node, self.job)

    async def wait(self, poll: float = 1.0) -> int | None:
        """0 once scrapyd lists the job as finished (the scan row tells how it ended); VANISHED when
        scrapyd no longer knows it (restarted without its job storage), UNREACHABLE when the node did
        not answer for UNREACHABLE_SECONDS; None while it is pending or running."""
        await asyncio.sleep(poll)
        try:
            jobs = await _json(self.client, "GET", "listjobs.json", params={"project": self.project})
        except (httpx.HTTPError, ScrapydError, ValueError) as exc:
            self.unreachable_since = self.unreachable_since or time.monotonic()
            logger.warning("scan %s: scrapyd %s did not answer (%s)", self.scan_id, self.node, type(exc).__name__)
            if time.monotonic() - self.unreachable_since < UNREACHABLE_SECONDS:
                return None
            return await self._ended(UNREACHABLE)
        self.unreachable_since = None
        if any(job.get("id") == self.job for job in jobs.get("finished", [])):
            return await self._ended(0)
        if not any(job.get("id") == self.job for key in ("pending", "running") for job in jobs.get(key, [])):
            return await self._ended(VANISHED)
        return None

    async def _ended(self, code: int) -> int:
        await self.client.aclose()
        return code

    def describe_exit(self, code: int) -> str:
        if code == VANISHED:
            return f"scrapyd job vanished on {self.node}"
        if code == UNREACHABLE:
            return f"scrapyd {self.node} unreachable"
        return "scrapyd job ended without finishing the scan"

    async def _cancel(self, signal: str) -> None:
        if self.client is not None and not self.client.is_closed:
            await _json(
                self.client, "POST", "cancel.json", data={"project": self.project, "job": self.job, "signal": signal}
            )

    async def stop(self) -> None:
        """SIGTERM once (a second one would make Scrapy stop at once, not drain)."""
        if not self.stopping:
            logger.info("scan %s: stopping scrapyd job %s", self.scan_id, self.job)
            await self._cancel("TERM")
            self.stopping = True

    async def kill(self) -> None:
        await self._cancel("KILL")
