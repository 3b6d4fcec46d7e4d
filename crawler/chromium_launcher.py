#!/usr/bin/env python3
"""Chromium, tied to the crawl that started it: ``PLAYWRIGHT_LAUNCH_OPTIONS.executable_path``.

Playwright's Node driver starts Chromium in a process group of its own and, on a
normal close, kills that group. When the driver dies without closing (the crawl
and the driver SIGKILLed together, the OOM killer), nothing kills the group:
Chromium only notices its debugging pipe closing, and a busy or hung browser may
not. This launcher stands between the driver and Chromium, as the group leader:

- it asks the kernel for SIGTERM when its parent (the driver) dies (PR_SET_PDEATHSIG),
- it watches the crawl process (``--crawler-parent-pid``, a pidfd), and
- on either, or on any signal, it SIGKILLs the whole group (Chromium, its zygotes,
  renderers, utility processes) and removes Playwright's temporary profile.

Otherwise it waits for Chromium and exits with its status. It reads two flags of
its own, which never reach Chromium: ``--crawler-chromium=PATH`` (the real binary)
and ``--crawler-parent-pid=PID``. Standard library only: it runs as a plain script.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
REAP_SECONDS = 5.0
PROFILE_PREFIX = "playwright_chromiumdev_profile-"  # Playwright's temporary --user-data-dir
PIPE_FDS = (3, 4)  # --remote-debugging-pipe: Playwright hands Chromium these two descriptors


def parse(argv: list[str]) -> tuple[str, int | None, list[str]]:
    chromium, parent, rest = "/usr/bin/chromium", None, []
    for arg in argv:
        if arg.startswith("--crawler-chromium="):
            chromium = arg.split("=", 1)[1]
        elif arg.startswith("--crawler-parent-pid="):
            parent = int(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return chromium, parent, rest


def temporary_profile(args: list[str]) -> str | None:
    for arg in args:
        if arg.startswith("--user-data-dir="):
            path = arg.split("=", 1)[1]
            if os.path.basename(path).startswith(PROFILE_PREFIX):
                return path
    return None


def die_with_parent() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    # Chromium's zygotes and crash handlers outlive the browser process by a moment: as the
    # subreaper, this process inherits and reaps them, instead of leaving them to PID 1.
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def below() -> list[int]:
    """This process's children (as subreaper: also orphans of its descendants) and the rest of its group."""
    me, group, found = str(os.getpid()).encode(), str(os.getpgrp()).encode(), []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and entry.encode() != me:
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == me or fields[2] == group:
                found.append(int(entry))
    return found


def reap_all() -> None:
    """SIGKILL and reap every process left below this one."""
    deadline = time.monotonic() + REAP_SECONDS
    while time.monotonic() < deadline:
        left = below()
        if not left:
            return
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        time.sleep(0.02)


def kill_group(profile: str | None) -> None:
    """SIGKILL everything below this process, reap it, remove the profile, exit."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    reap_all()
    if profile:
        shutil.rmtree(profile, ignore_errors=True)
    os._exit(128 + signal.SIGKILL)


def watch(parent: int | None):
    """A descriptor readable when the crawl process exits (None: no pid given, or no pidfd)."""
    if parent is None:
        return None
    try:
        return os.pidfd_open(parent)
    except (OSError, AttributeError):
        return None


def main(argv: list[str]) -> int:
    chromium, parent, args = parse(argv)
    profile = temporary_profile(args)
    driver = os.getppid()
    die_with_parent()
    if os.getpid() != os.getpgrp():  # not started as a group leader: make a group to kill
        os.setpgid(0, 0)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: kill_group(profile))
    if os.getppid() != driver or (parent is not None and not alive(parent)):
        kill_group(profile)  # the parent died before the death signal was armed
    crawl = watch(parent)
    pass_fds = tuple(fd for fd in PIPE_FDS if fd_open(fd))
    browser = subprocess.Popen([chromium, *args], pass_fds=pass_fds)
    for fd in pass_fds:  # only Chromium holds the pipe: the driver sees EOF when it exits
        os.close(fd)
    exited = watch(browser.pid)
    while True:
        watched = [fd for fd in (crawl, exited) if fd is not None]
        ready, _, _ = select.select(watched, [], [], 1.0)
        if crawl in ready or (parent is not None and crawl is None and not alive(parent)):
            kill_group(profile)
        code = browser.poll()
        if code is not None:
            reap_all()
            return code if code >= 0 else 128 - code


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fd_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
