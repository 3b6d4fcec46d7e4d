"""The worker's shared Chromium (crawler/worker/shared_browser.py, WORKER_SHARED_BROWSER): two scans
of one worker render in one Chromium process and still store their evidence screenshots; a crawl
SIGKILLed leaves no context behind in it (the server closes a client's contexts when it disconnects);
no Chromium outlives a SIGKILLed worker."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import psutil
import pytest
from scrapy.settings import Settings
from worker_support import Worker, create_scan, defer, query, scan_row, target, wait_for, worker_env

from crawler.worker.shared_browser import SharedBrowser
from tools.services import free_port

pytestmark = pytest.mark.e2e

BROWSER_NAMES = ("chromium", "chrome")  # not chrome_crashpad_handler, nor the zygotes (--type=)

CONNECT_AND_HOLD = """
import asyncio, sys
from playwright.async_api import async_playwright

async def main():
    async with async_playwright() as p:
        browser = await p.chromium.connect(sys.argv[1])
        context = await browser.new_context()
        await (await context.new_page()).goto("data:text/html,<p>held</p>")
        print("ready", flush=True)
        await asyncio.sleep(600)

asyncio.run(main())
"""


def chromium_browsers(root_pid: int | None = None) -> list[psutil.Process]:
    """Chromium's browser processes (no ``--type=``), below ``root_pid`` when given."""
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = process.info["cmdline"] or []
            if (
                not cmdline
                or os.path.basename(cmdline[0]) not in BROWSER_NAMES
                or any(a.startswith("--type=") for a in cmdline)
            ):
                continue
            if "--crawler-chromium=" in " ".join(cmdline) or process.status() == psutil.STATUS_ZOMBIE:
                continue  # the launcher, or gone
            parent = process.parent()
            if parent is not None and parent.cmdline() == cmdline:
                continue  # the browser's fork before it execs a helper (crashpad, a zygote)
            if root_pid is None or any(parent.pid == root_pid for parent in process.parents()):
                found.append(process)
        except psutil.Error:
            continue
    return found


def gone(processes: list[psutil.Process]) -> bool:
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def test_a_sigkilled_crawl_leaves_no_context_in_the_shared_browser():
    async def scenario():
        from playwright.async_api import async_playwright

        from crawler.settings import PLAYWRIGHT_LAUNCH_OPTIONS

        port = free_port()  # a DevTools port too, for this test to count Chromium's contexts
        options = {**PLAYWRIGHT_LAUNCH_OPTIONS}
        options["args"] = [*options["args"], f"--remote-debugging-port={port}"]
        shared = SharedBrowser(Settings({"PLAYWRIGHT_LAUNCH_OPTIONS": options}))
        client = None
        try:
            url = await shared.lease()
            assert url and url.startswith("ws://127.0.0.1:")
            server = shared.browser
            client = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CONNECT_AND_HOLD, url, stdout=asyncio.subprocess.PIPE
            )
            assert (await asyncio.wait_for(client.stdout.readline(), 60)).strip() == b"ready"
            async with async_playwright() as p:
                observer = await p.chromium.connect_over_cdp(f"http://127.0.0.1:{port}")
                session = await observer.new_browser_cdp_session()

                async def contexts() -> int:
                    return len((await session.send("Target.getBrowserContexts"))["browserContextIds"])

                held = await contexts()
                client.kill()  # SIGKILL: the crawl's driver dies without closing anything
                await client.wait()
                await client.stdout.read()
                for _ in range(300):  # up to a minute
                    if not (left := await contexts()):
                        break
                    await asyncio.sleep(0.2)
                await observer.close()
            shared.release(url)
            return held, left, server.returncode is None and shared.browser is server
        finally:
            if client is not None and client.returncode is None:
                client.kill()
            await shared.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 180)) == (1, 0, True)


def test_two_scans_share_one_chromium_with_screenshots_and_none_outlives_a_sigkilled_worker(
    own_database_url, sandbox, tmp_path
):
    env = worker_env(own_database_url, sandbox, tmp_path, WORKER_CONCURRENCY="2", SCREENSHOTS_ENABLED="true")
    person = target()
    scans = [create_scan(env, person) for _ in range(2)]
    for scan_id in scans:
        defer(own_database_url, scan_id)
    worker = Worker(env, tmp_path / "worker.log")
    try:
        seen: dict[int, psutil.Process] = {}
        most = 0

        def done() -> bool:
            nonlocal most
            browsers = chromium_browsers(worker.process.pid)
            most = max(most, len(browsers))
            seen.update((b.pid, b) for b in browsers)
            return all(scan_row(own_database_url, s)["status"] in ("completed", "failed") for s in scans)

        wait_for(done, "both scans to finish", worker=worker, interval=0.1)
        rows = [scan_row(own_database_url, s) for s in scans]
        assert [r["status"] for r in rows] == ["completed", "completed"], rows
        log = worker.log()
        assert log.count("shared browser started") == 1, log[-4000:]
        assert most == 1 and len(seen) == 1, [
            (p.cmdline()[-6:], [q.name() for q in p.parents()]) for p in seen.values() if p.is_running()
        ]
        shots = query(
            own_database_url,
            "SELECT count(*) FROM findings WHERE scan_id = ANY(%s::uuid[]) AND screenshot_sha256 IS NOT NULL",
            (scans,),
        )[0][0]
        assert shots >= 2
        alive = chromium_browsers(worker.process.pid)
        assert len(alive) == 1  # the shared browser stays up between crawls
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(timeout=30)
        wait_for(lambda: gone(alive), "the shared Chromium to die with the worker", timeout=60)
    finally:
        worker.close()


def test_the_shared_browser_is_replaced_after_max_crawls_once_they_ended_and_restarted_when_dead():
    async def scenario():
        from crawler.settings import PLAYWRIGHT_LAUNCH_OPTIONS

        settings = Settings(
            {"PLAYWRIGHT_LAUNCH_OPTIONS": PLAYWRIGHT_LAUNCH_OPTIONS, "WORKER_SHARED_BROWSER_MAX_CRAWLS": 2}
        )
        shared = SharedBrowser(settings)
        try:
            first = await shared.lease()
            server = shared.browser
            assert await shared.lease() == first
            third = await shared.lease()  # past 2 crawls: a new server; the old one runs until its crawls end
            replaced = third != first and server.returncode is None
            shared.release(first)
            shared.release(first)
            await asyncio.wait_for(server.wait(), 60)  # closed once both ended
            shared.browser.kill()  # the current server dies: the next crawl gets a new one
            await shared.browser.wait()
            fourth = await shared.lease()
            return replaced, fourth not in (first, third), shared.browser.returncode
        finally:
            await shared.close()

    assert asyncio.run(asyncio.wait_for(scenario(), 180)) == (True, True, None)
