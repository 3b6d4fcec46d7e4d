"""Sending mail through a real Scrapy crawl, for the tests of the mail providers and of their users.

``MailSendSpider`` (run with ``scrapy runspider`` by ``run_mail_crawl``) reads a JSON list of
``{to, subject, body}``, sends each through ``provider_from_crawler`` (``concurrency`` at a
time) and writes one result per message, in order: ``{"index", "message_id"}`` or
``{"index", "error": <MailError class>, "reason"}``, with the time it finished. The crawl's whole
log (DEBUG) comes back too, so a test can look for tokens and bodies in it.

``MailSandbox`` is a sandbox of its own (``--only mail``, free port, its own Maildir) with
helpers for its control endpoints.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import scrapy

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]


class MailSendSpider(scrapy.Spider):
    name = "mail_send_test"

    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        from crawler.removal.mail import mail_spider_settings

        for name, value in mail_spider_settings(settings).items():
            settings.set(name, value, priority="spider")

    def __init__(self, sends: str = "", out: str = "", concurrency: str = "1", **kwargs):
        super().__init__(**kwargs)
        self.sends = json.loads(Path(sends).read_text())
        self.out = Path(out)
        self.concurrency = int(concurrency)

    async def start(self):
        from crawler.removal.mail import MailError, provider_from_crawler

        provider = provider_from_crawler(self.crawler)
        gate = asyncio.Semaphore(self.concurrency)
        started = time.time()

        async def one(index: int, mail: dict) -> dict:
            async with gate:
                try:
                    message_id = await provider.send(mail["to"], mail["subject"], mail["body"])
                    result = {"index": index, "message_id": message_id}
                except MailError as exc:
                    result = {"index": index, "error": type(exc).__name__, "reason": exc.reason}
                return {**result, "at": time.time() - started}

        results = await asyncio.gather(*(one(i, mail) for i, mail in enumerate(self.sends)))
        self.out.write_text(json.dumps(results))
        return
        yield  # an (empty) async generator, as Spider.start must be


@dataclass
class MailCrawl:
    returncode: int
    results: list[dict]
    log: str

    def errors(self) -> list[str | None]:
        return [result.get("error") for result in self.results]


def run_mail_crawl(
    env: dict,
    mail_url: str,
    sends: list[dict],
    workdir: Path,
    *,
    settings: dict | None = None,
    concurrency: int = 1,
    timeout: float = 120,
) -> MailCrawl:
    """``scrapy runspider`` of ``MailSendSpider`` against the mail API at ``mail_url``; fast retries."""
    workdir.mkdir(parents=True, exist_ok=True)
    sends_file, out_file = workdir / "sends.json", workdir / "results.json"
    sends_file.write_text(json.dumps(sends))
    out_file.unlink(missing_ok=True)
    merged = {
        "MAIL_PROVIDER": "api",
        "MAIL_API_URL": mail_url,
        "MAIL_API_MIN_INTERVAL_SECONDS": "1",
        "RETRY_BACKOFF_BASE": "0.2",
        "RETRY_BACKOFF_MAX": "1",
        "LOG_LEVEL": "DEBUG",
        **(settings or {}),
    }
    command = [sys.executable, "-m", "scrapy", "runspider", str(HERE), "-a", f"sends={sends_file}"]
    command += ["-a", f"out={out_file}", "-a", f"concurrency={concurrency}"]
    for name, value in merged.items():
        command += ["-s", f"{name}={value}"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    results = json.loads(out_file.read_text()) if out_file.exists() else []
    return MailCrawl(done.returncode, results, done.stdout + done.stderr)


class MailSandbox:
    """The sandbox's mail service (and any other services asked for, in ``urls``) on free ports,
    delivering into ``maildir``."""

    def __init__(self, urls: dict[str, str], maildir: Path):
        self.urls, self.url, self.maildir = urls, urls["mail"], maildir

    def configure(self, **changes) -> dict:
        from support import http

        reply = http(f"{self.url}/_sandbox/config", data=changes)
        assert reply.status == 200, reply.body
        return reply.json()

    def sent(self) -> list[dict]:
        from support import http

        return http(f"{self.url}/__sent").json()

    def stats(self) -> dict:
        from support import http

        return http(f"{self.url}/__stats").json()


@contextmanager
def mail_sandbox(tmp: Path, also: tuple[str, ...] = ()):
    """A sandbox of the test's own: the mail service, plus the services in ``also`` (a broker
    whose privacy address should receive mail must run in the same process)."""
    from sandbox.launch import running

    # a directory that does not exist yet: the mailroom creates the Maildir in it
    maildir = tmp / "maildir"
    services = ",".join(("mail", *also))
    with running(["--only", services, "--free-ports", "--maildir", str(maildir)], timeout=60) as urls:
        yield MailSandbox(urls, maildir)
