"""The worker's fork server (crawler/worker/forkserver.py): a forked ``scrapy`` command reports its
exit code, runs in its own session and process group, is signalled like a subprocess, dies with the
fork server, and the next crawl starts a new server; LocalCrawl falls back to a subprocess when the
server cannot start."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest

from crawler.worker.crawl import LocalCrawl
from crawler.worker.forkserver import ForkServer

pytestmark = pytest.mark.integration

SLEEPS = ["shell", "-c", "__import__('time').sleep(600)"]  # a scrapy command that runs until signalled


def run(coroutine):
    return asyncio.run(asyncio.wait_for(coroutine, 180))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def own_session(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid and os.getsid(pid) == pid
    except ProcessLookupError:
        return False


async def eventually(predicate, seconds: float = 60) -> bool:
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


def test_exit_codes_are_reported():
    async def scenario():
        server = ForkServer()
        try:
            ok = await server.spawn(["settings", "--get", "BOT_NAME"])
            unknown = await server.spawn(["no-such-command"])
            return await ok.wait(), await unknown.wait(), ok.returncode
        finally:
            await server.close()

    assert run(scenario()) == (0, 2, 0)


def test_forked_crawl_has_its_own_process_group_and_is_signalled():
    async def scenario():
        server = ForkServer()
        try:
            crawl = await server.spawn(SLEEPS)
            assert crawl.returncode is None
            # the server answers once the child called setsid(); waited on all the same, with a deadline
            assert await eventually(lambda: own_session(crawl.pid))
            assert os.getpgid(crawl.pid) != os.getpgid(0)
            crawl.send_signal(signal.SIGTERM)
            return await crawl.wait()
        finally:
            await server.close()

    assert run(scenario()) == -signal.SIGTERM


def test_crawls_die_with_the_server_and_the_next_crawl_starts_a_new_one():
    async def scenario():
        server = ForkServer()
        try:
            crawl = await server.spawn(SLEEPS)
            first = server.process.pid
            server.process.kill()
            code = await crawl.wait()  # the server's EOF: its crawls ended killed
            died = await eventually(lambda: not alive(crawl.pid))
            again = await server.spawn(["settings", "--get", "BOT_NAME"])
            return code, died, first != server.process.pid, await again.wait()
        finally:
            await server.close()

    assert run(scenario()) == (-signal.SIGKILL, True, True, 0)


def test_local_crawl_falls_back_to_a_subprocess_when_the_server_cannot_start(caplog):
    async def scenario():
        broken = ForkServer(python="/nonexistent/python")
        crawl = LocalCrawl("s1", command=[sys.executable, "-m", "scrapy", "version"], fork_server=broken)
        await crawl.start()
        while (code := await crawl.wait(0.5)) is None:
            pass
        return code, isinstance(crawl.process, asyncio.subprocess.Process)

    assert run(scenario()) == (0, True)
    assert "fork server unavailable" in caplog.text
