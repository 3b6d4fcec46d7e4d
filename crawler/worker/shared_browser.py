"""One Chromium per worker process, shared by its local crawls (``WORKER_SHARED_BROWSER``).

Starting and closing Chromium costs a crawl about 1 CPU-second and 2 to 5 s of wall time
(bench/scans.py), as much as rendering its pages. The worker starts one Playwright browser server
(``python -m playwright launch-server``: a Node process and its Chromium, with the same flags as a
crawl's own launch, through crawler/chromium_launcher.py so that Chromium's process group is
SIGKILLed when the worker dies, even by SIGKILL). Each crawl gets its endpoint as
``PLAYWRIGHT_SHARED_BROWSER_URL`` and connects with Playwright's protocol (crawler/browser.py): it
sees only the contexts it created, and the server closes them when the crawl disconnects, also when
it is SIGKILLed (tests/worker/test_shared_browser.py).

Why not Chromium's DevTools port (``connect_over_cdp``): every CDP client attaches to every page of
the browser, so each crawl's driver instrumented the other crawls' pages too (measured: more Node and
Chromium CPU than the launches it saved).

The server is started on first use and again when it died; it is replaced after
``WORKER_SHARED_BROWSER_MAX_CRAWLS`` crawls, once the crawls given it ended. Its endpoint listens on
127.0.0.1 with a random path.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import tempfile

import orjson

from crawler.browser import guarded_launch_options

logger = logging.getLogger(__name__)

START_TIMEOUT = 60.0
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # in the server's process, between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def server_config(launch_options: dict, guard: bool) -> dict:
    """launchServer options (camelCase) from ``PLAYWRIGHT_LAUNCH_OPTIONS``, on 127.0.0.1."""
    options = guarded_launch_options(dict(launch_options), os.getpid()) if guard else dict(launch_options)
    names = {"executable_path": "executablePath", "ignore_default_args": "ignoreDefaultArgs"}
    config = {names.get(k, k): v for k, v in options.items()}
    config["host"] = "127.0.0.1"
    return config


class SharedBrowser:
    """The worker's Chromium: ``await lease()`` gives a crawl its endpoint, ``release()`` when it ended."""

    def __init__(self, settings):
        self.launch_options = dict(settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS"))
        self.max_crawls = settings.getint("WORKER_SHARED_BROWSER_MAX_CRAWLS")
        self.guard = settings.getbool("PLAYWRIGHT_PROCESS_GUARD", True)
        self.lock = asyncio.Lock()
        self.browser = None  # the server process
        self.url: str | None = None
        self.crawls = 0  # crawls given this browser
        self.running = 0  # of which still running
        self.retired: list = []  # [url, browser, crawls running]: past max_crawls, closed once those ended
        self.background: set[asyncio.Task] = set()

    async def lease(self) -> str | None:
        """The browser server's endpoint for one crawl (None: no shared browser, the crawl launches its own)."""
        async with self.lock:
            try:
                if self.browser is None or self.browser.returncode is not None:
                    await self._start()
                elif self.max_crawls and self.crawls >= self.max_crawls:
                    self._retire()
                    await self._start()
            except Exception as exc:
                logger.warning("shared browser unavailable (%s); the crawl launches its own", type(exc).__name__)
                await self._close_browser(self.browser)
                self.browser = self.url = None
                return None
            self.crawls += 1
            self.running += 1
            return self.url

    def release(self, url: str | None) -> None:
        if url is None:
            return
        if url == self.url:
            self.running -= 1
            return
        for entry in self.retired:
            if entry[0] == url:
                entry[2] -= 1
                if entry[2] <= 0:
                    self.retired.remove(entry)
                    self._close_soon(entry[1])
                break

    def _retire(self) -> None:
        if self.running <= 0:
            self._close_soon(self.browser)
        else:
            self.retired.append([self.url, self.browser, self.running])
        self.browser = self.url = None

    async def _start(self) -> None:
        await self._close_browser(self.browser)  # a dead one
        # its endpoint is the first line of its stdout: a file, not a pipe (Chromium's helpers may hold
        # a pipe open after the server exits, and a pipe left unread could fill)
        with tempfile.TemporaryDirectory(prefix="crawler-browser-server-") as directory:
            config, out = os.path.join(directory, "config.json"), os.path.join(directory, "stdout")
            with open(config, "wb") as file:  # noqa: ASYNC230 - a few bytes in a temporary directory
                file.write(orjson.dumps(server_config(self.launch_options, self.guard)))
            with open(out, "wb") as stdout:  # noqa: ASYNC230
                self.browser = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "playwright",
                    "launch-server",
                    "--browser",
                    "chromium",
                    "--config",
                    config,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=stdout,
                    preexec_fn=_die_with_parent,
                    start_new_session=True,  # a Ctrl-C meant for the worker does not reach it
                )
            url = await asyncio.wait_for(self._endpoint(out), START_TIMEOUT)
        self.url = url
        self.crawls = self.running = 0
        logger.info("shared browser started (pid %s)", self.browser.pid)

    async def _endpoint(self, path: str) -> str:
        while True:
            with open(path, "rb") as file:  # noqa: ASYNC230 - one line, polled
                line = file.readline()
            if line.endswith(b"\n"):
                url = line.decode().strip()
                if not url.startswith("ws://"):
                    raise OSError("the browser server did not start")
                return url
            if self.browser.returncode is not None:
                raise OSError(f"the browser server exited ({self.browser.returncode})")
            await asyncio.sleep(0.05)

    def _close_soon(self, browser) -> None:
        task = asyncio.ensure_future(self._close_browser(browser))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _close_browser(self, browser) -> None:
        """SIGTERM: Playwright closes Chromium (and the launcher its group); SIGKILL if it hangs."""
        if browser is not None and browser.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                browser.terminate()
            try:
                await asyncio.wait_for(browser.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    browser.kill()
                await browser.wait()

    async def close(self) -> None:
        async with self.lock:
            for _, browser, _ in self.retired:
                await self._close_browser(browser)
            self.retired.clear()
            await asyncio.gather(*self.background, return_exceptions=True)
            await self._close_browser(self.browser)
            self.browser = self.url = None
