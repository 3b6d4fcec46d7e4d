"""One scan's crawl, run by the worker: a local ``scrapy crawl scan`` child process.

The child gets the scan id as its only argument (the person is read, encrypted, from ``scans``;
secrets come from the inherited environment). It runs in its own process group, so a Ctrl-C or
SIGTERM meant for the worker does not reach it (the worker decides what happens to running scans),
and it is SIGKILLed by the kernel if the worker dies (PR_SET_PDEATHSIG): a crawl orphaned by a
killed worker must not race with the retry of its scan on another worker.

With a fork server (``WORKER_FORKSERVER``, crawler/worker/forkserver.py) a ``scrapy`` command is
forked from a warm process instead of started as a new interpreter: the same guarantees, without a
second and a half of imports per scan. A fork server that cannot start falls back to the subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent.parent
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:  # the worker died before prctl took effect
        os._exit(1)


def crawl_command(scan_id: str) -> list[str]:
    return [sys.executable, "-m", "scrapy", "crawl", "scan", "-a", f"scan_id={scan_id}"]


class LocalCrawl:
    """``scrapy crawl scan -a scan_id=<id>`` as a child process of this worker (or another crawl's
    ``command``, e.g. the optout crawl, with ``name`` as what the logs call it)."""

    def __init__(
        self,
        scan_id: str,
        command: list[str] | None = None,
        name: str | None = None,
        fork_server=None,
        browser=None,
    ):
        self.scan_id = scan_id
        self.command = command or crawl_command(scan_id)
        self.name = name or f"scan {scan_id}"
        self.fork_server = fork_server
        self.browser = browser  # the worker's SharedBrowser (crawler/worker/shared_browser.py), or None
        self.process = None  # asyncio.subprocess.Process, or a ForkedCrawl
        self.ended: asyncio.Task | None = None

    async def start(self) -> None:
        url = await self.browser.lease() if self.browser is not None else None
        if url is not None:
            self.command = [*self.command, "-s", f"PLAYWRIGHT_SHARED_BROWSER_URL={url}"]
        try:
            await self._start()
        except BaseException:
            if url is not None:
                self.browser.release(url)
            raise
        if url is not None:
            self.ended = asyncio.ensure_future(self.process.wait())
            self.ended.add_done_callback(lambda _: self.browser.release(url))

    async def _start(self) -> None:
        if self.fork_server is not None and self.command[:3] == [sys.executable, "-m", "scrapy"]:
            try:
                self.process = await self.fork_server.spawn(self.command[3:])
                logger.info("%s: crawl started (pid %s, forked)", self.name, self.process.pid)
                return
            except (OSError, TimeoutError) as exc:
                logger.warning("%s: fork server unavailable (%s); starting the crawl afresh", self.name, exc)
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # its own process group (and session)
        )
        logger.info("%s: crawl started (pid %s)", self.name, self.process.pid)

    async def wait(self, poll: float = 1.0) -> int | None:
        """The exit code once the crawl ended; None while it runs (after ``poll`` seconds)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self.process.wait()), poll)
        except TimeoutError:
            return None

    def describe_exit(self, code: int) -> str:
        return f"crawl exited with code {code}"

    async def stop(self) -> None:
        """SIGTERM: the crawl drains and ends its scan ``cancelled`` (crawler/commands/crawl.py)."""
        if self.process is not None and self.process.returncode is None:
            logger.info("%s: stopping the crawl", self.name)
            self.process.send_signal(signal.SIGTERM)

    async def kill(self) -> None:
        """SIGKILL the crawl's whole process group (a browser it started too)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
