"""A warm parent for the worker's crawls: ``scrapy crawl`` forked from a process that has imported
Scrapy, Twisted, scrapy-playwright and the project once, instead of a new interpreter per scan.

Measured on a 2-core machine (bench/scans.py): a new ``python -m scrapy crawl scan`` spends about
1.5 CPU-seconds importing (more without .pyc files) and building tldextract's suffix trie before its
first request, a third of a five-site scan's CPU. A forked crawl starts with all of that done.

Each crawl is still its own process, as with ``LocalCrawl``'s subprocess: its own session and process
group (``os.setsid``), SIGKILLed by the kernel if its parent dies (PR_SET_PDEATHSIG; the fork server
itself dies with its worker), its exit code reported to the worker. The reactor, event loop, logging
and database pools are only created in the child: the server imports modules and nothing else (no
threads, no loop, no reactor), which is what makes ``fork`` safe here.

Protocol (one server per worker process): the worker writes one JSON list a line on the server's stdin,
the arguments after ``scrapy`` (``["crawl", "scan", "-a", "scan_id=..."]``); the server answers on the
reply descriptor ``started <pid>`` once that crawl is in its own session (its process group exists)
and ``exit <pid> <code>`` when that crawl ends (a negative
code: killed by that signal, as asyncio reports it). EOF on stdin: the server exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import select
import signal
import sys
import traceback

import orjson

logger = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
START_TIMEOUT = 120.0  # the server's imports on a loaded machine
# modules every scan crawl imports (beyond those named by the settings, loaded from there)
PRELOAD = (
    "scrapy.cmdline",
    "scrapy.crawler",
    "scrapy.commands.crawl",
    "scrapy.core.engine",
    "scrapy.core.downloader.handlers.http11",
    "scrapy.http",
    "scrapy.settings.default_settings",
    "scrapy.spiderloader",
    "crawler.commands.crawl",
    "crawler.runtime",
    "crawler.store.scans",
    "playwright.async_api",
    "scrapy_playwright.handler",
    "psycopg",
    "psycopg_pool",
)
SETTINGS_WITH_CLASSES = (
    "EXTENSIONS",
    "EXTENSIONS_BASE",
    "DOWNLOADER_MIDDLEWARES",
    "DOWNLOADER_MIDDLEWARES_BASE",
    "SPIDER_MIDDLEWARES",
    "SPIDER_MIDDLEWARES_BASE",
    "ITEM_PIPELINES",
    "DOWNLOAD_HANDLERS",
)


def die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


# ---- the server process ---------------------------------------------------------------------------


def preload() -> None:
    """Import what a scan crawl imports, without starting anything."""
    import importlib

    from scrapy.utils.misc import load_object, walk_modules
    from scrapy.utils.project import get_project_settings

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    settings = get_project_settings()
    paths = [settings.get("SCHEDULER"), *settings.getdict("DOWNLOAD_HANDLERS").values()]
    for name in ("EXTENSIONS", "DOWNLOADER_MIDDLEWARES", "SPIDER_MIDDLEWARES", "ITEM_PIPELINES"):
        paths += list(settings.getwithbase(name))
    for path in paths:
        with contextlib.suppress(Exception):  # a bad path is the crawl's to report, not ours
            if isinstance(path, str):
                load_object(path)
    for module in settings.getlist("SPIDER_MODULES"):
        walk_modules(module)
    with contextlib.suppress(Exception):  # its public-suffix trie, built on first use in every crawl
        from scrapy.downloadermiddlewares.cookies import _split_domain

        _split_domain("example.com")
    if "twisted.internet.reactor" in sys.modules:  # a forked crawl could not install its own
        raise RuntimeError("a module installed the Twisted reactor at import time")


def run_child(argv: list[str], server_pid: int, reply_fd: int, ready_fd: int) -> None:
    """In the forked child: become the crawl, then exit with its code (never return)."""
    code = 1
    try:
        os.setsid()  # its own session and process group: the worker signals it, killpg kills its browser
        os.write(ready_fd, b"1")  # the server answers ``started`` only now: killpg(pid) finds the group
        os.close(ready_fd)
        die_with_parent()
        if os.getppid() != server_pid:  # the server died before prctl took effect
            os._exit(1)
        os.close(reply_fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        import random

        random.seed()  # not the server's sequence, shared by every fork
        from scrapy.cmdline import execute

        execute(["scrapy", *argv])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def serve(reply_fd: int) -> None:
    """Read commands on stdin, fork a crawl for each, report starts and exits on ``reply_fd``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides; its own signals are not ours
    preload()
    gc.freeze()  # what the server imported stays shared with the children (no copy-on-write by the GC)
    me = os.getpid()
    pending = b""
    reply = os.fdopen(reply_fd, "wb", buffering=0)
    reply.write(b"ready\n")
    children: set[int] = set()
    while True:
        readable, _, _ = select.select([0], [], [], 0.05)
        while children:  # reap every crawl that ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            children.discard(pid)
            reply.write(f"exit {pid} {os.waitstatus_to_exitcode(status)}\n".encode())
        if not readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            break  # the worker closed stdin: leave; crawls still running die with us (PDEATHSIG)
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            argv = [str(a) for a in orjson.loads(line)]
            ready_read, ready_write = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(ready_read)
                run_child(argv, me, reply_fd, ready_write)
            os.close(ready_write)
            try:
                os.read(ready_read, 1)  # in its own session (or EOF: it died before)
            finally:
                os.close(ready_read)
            children.add(pid)
            reply.write(f"started {pid}\n".encode())


# ---- the worker's side ----------------------------------------------------------------------------


class ForkedCrawl:
    """A crawl forked by the server, with the parts of ``asyncio.subprocess.Process`` LocalCrawl uses."""

    def __init__(self, pid: int, ended: asyncio.Future):
        self.pid = pid
        self.ended = ended

    @property
    def returncode(self) -> int | None:
        return self.ended.result() if self.ended.done() else None

    async def wait(self) -> int:
        return await asyncio.shield(self.ended)

    def send_signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signum)


class ForkServer:
    """The worker's fork server, started on first use and again if it died."""

    def __init__(self, python: str = sys.executable):
        self.python = python
        self.process: asyncio.subprocess.Process | None = None
        self.reader_task: asyncio.Task | None = None
        self.lock: asyncio.Lock | None = None
        self.replies: asyncio.Queue | None = None
        self.ended: dict[int, asyncio.Future] = {}

    async def start(self) -> None:
        from crawler.worker.crawl import ROOT

        read_fd, write_fd = os.pipe()
        try:
            self.process = await asyncio.create_subprocess_exec(
                self.python,
                "-m",
                "crawler.worker.forkserver",
                str(write_fd),
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                pass_fds=(write_fd,),
                preexec_fn=die_with_parent,
                start_new_session=True,  # a Ctrl-C meant for the worker does not reach it
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb"))
        self.replies = asyncio.Queue()
        self.reader_task = loop.create_task(self.read(reader, self.replies), name="forkserver-replies")
        first = await asyncio.wait_for(self.replies.get(), START_TIMEOUT)
        if first != "ready":
            raise OSError(f"the fork server did not start ({first})")
        logger.info("fork server started (pid %s)", self.process.pid)

    async def read(self, reader: asyncio.StreamReader, replies: asyncio.Queue) -> None:
        while line := await reader.readline():
            kind, _, rest = line.decode().strip().partition(" ")
            if kind == "exit":
                pid, code = (int(x) for x in rest.split())
                self.future(pid).set_result(code)
            else:
                await replies.put(line.decode().strip())
        # the server is gone: so are its crawls (PDEATHSIG); they ended killed
        for future in self.ended.values():
            if not future.done():
                future.set_result(-signal.SIGKILL)
        await replies.put("gone")

    def future(self, pid: int) -> asyncio.Future:
        if (future := self.ended.get(pid)) is None:
            future = self.ended[pid] = asyncio.get_running_loop().create_future()
        return future

    async def spawn(self, argv: list[str]) -> ForkedCrawl:
        """Fork ``scrapy <argv>``; raises OSError when the server cannot."""
        if self.lock is None:
            self.lock = asyncio.Lock()
        async with self.lock:
            if self.process is None or self.process.returncode is not None or self.reader_task.done():
                await self.start()
            self.process.stdin.write(orjson.dumps(argv) + b"\n")
            await self.process.stdin.drain()
            answer = await asyncio.wait_for(self.replies.get(), START_TIMEOUT)
            kind, _, pid = answer.partition(" ")
            if kind != "started":
                raise OSError(f"the fork server did not start the crawl ({answer})")
            pid = int(pid)
            crawl = ForkedCrawl(pid, self.future(pid))
            crawl.ended.add_done_callback(lambda _: self.ended.pop(pid, None))
            return crawl

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                self.process.kill()
        if self.reader_task is not None:
            self.reader_task.cancel()
            await asyncio.gather(self.reader_task, return_exceptions=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
