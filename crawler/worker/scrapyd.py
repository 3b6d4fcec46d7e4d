"""One scan's crawl on a scrapyd node (``SCRAPYD_URLS``) instead of a local child process.

``schedule.json`` gets the project, the spider and the scan id, nothing else: scrapyd keeps its
arguments in its queue, its log and the process list, so the person (encrypted in ``scans``) and
any secret (scrapyd's environment) never go there. The node with the fewest jobs is chosen;
``listjobs.json`` tells when the job ended, ``cancel.json`` stops it (SIGTERM: the crawl drains
and ends its scan ``cancelled``). Basic-auth credentials may be in a node's URL (user:pass@host).
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import httpx
from scrapy.utils.conf import get_config

logger = logging.getLogger(__name__)

SPIDER = "scan"
TIMEOUT = 30.0


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
    bare = urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else "")))
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

    async def _load(self, client: httpx.AsyncClient) -> int:
        status = await _json(client, "GET", "daemonstatus.json")
        return int(status.get("running", 0)) + int(status.get("pending", 0))

    async def start(self) -> None:
        candidates = []
        for url in self.urls:
            client, bare = _client(url)
            try:
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
            data={"project": self.project, "spider": SPIDER, "scan_id": self.scan_id},
        )
        self.job = body["jobid"]
        logger.info("scan %s: scheduled on scrapyd %s as job %s", self.scan_id, self.node, self.job)

    async def wait(self, poll: float = 1.0) -> int | None:
        """0 once scrapyd lists the job as finished; None while it is pending or running."""
        await asyncio.sleep(poll)
        jobs = await _json(self.client, "GET", "listjobs.json", params={"project": self.project})
        if any(job.get("id") == self.job for job in jobs.get("finished", [])):
            await self.client.aclose()
            return 0
        if not any(job.get("id") == self.job for key in ("pending", "running") for job in jobs.get(key, [])):
            await self.client.aclose()
            return -1  # gone (scrapyd restarted without its job storage)
        return None

    def describe_exit(self, code: int) -> str:
        if code == -1:
            return f"scrapyd job vanished on {self.node}"
        return "scrapyd job ended without finishing the scan"

    async def stop(self) -> None:
        if self.client is not None and not self.client.is_closed:
            await _json(
                self.client, "POST", "cancel.json", data={"project": self.project, "job": self.job, "signal": "TERM"}
            )

    async def kill(self) -> None:
        await self.stop()  # scrapyd: a second cancel of a running job kills it
