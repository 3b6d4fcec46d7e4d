"""The scans service as child processes, for as long as a ``with`` block lasts: the API
(``python -m crawler.api``) and a worker (``python -m crawler.worker``), plus an API key.

``make demo`` and ``make serve`` both need it, as a user would start it from the README.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class ServiceFailed(RuntimeError):
    """A service exited or did not answer in time; the message says which and where its log is."""


@dataclass(frozen=True)
class Service:
    api: str  # base URL of the API and the page
    key: str  # a fresh API key for the service's user


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def child(name: str, argv: list[str], env: dict, log_file: Path) -> Iterator[subprocess.Popen]:
    """A child process with its output in ``log_file``; SIGTERM (then SIGKILL) when the block ends."""
    with log_file.open("ab") as log:
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_listening(process: subprocess.Popen, port: int, name: str, log_file: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServiceFailed(f"{name} did not start; see {log_file}") from None
            time.sleep(0.1)


def create_key(env: dict, user: str) -> str:
    """``python -m crawler.api keys create --user USER``: the key is alone on the last line."""
    result = subprocess.run(
        [sys.executable, "-m", "crawler.api", "keys", "create", "--user", user],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ServiceFailed(f"keys create failed: {result.stderr.strip()[-500:]}")
    return result.stdout.strip().splitlines()[-1]


@contextmanager
def scans_service(
    env: dict, logs_dir: Path, user: str = "demo", host: str = "127.0.0.1", port: int | None = None
) -> Iterator[Service]:
    """API and worker on the database in ``env["DATABASE_URL"]``; yields the API's URL and a new key."""
    port = port or free_port()
    env = {**env, "API_HOST": host, "API_PORT": str(port)}
    logs_dir.mkdir(parents=True, exist_ok=True)
    api_log, worker_log = logs_dir / "api.log", logs_dir / "worker.log"
    with ExitStack() as stack:
        key = create_key(env, user)
        api = stack.enter_context(child("api", [sys.executable, "-m", "crawler.api"], env, api_log))
        stack.enter_context(child("worker", [sys.executable, "-m", "crawler.worker"], env, worker_log))
        wait_listening(api, port, "the API", api_log)
        yield Service(f"http://{host}:{port}", key)


def environment(**overrides: str) -> dict:
    return {**os.environ, **overrides}
