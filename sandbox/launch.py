"""Run ``python -m sandbox`` as a child process for as long as a ``with`` block lasts.

The demo, the benches and the tests' session fixture all need the same thing:
start it with some options, wait until every service listens (it writes the
ports file only then), hand back {service: base URL}, and stop it on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class SandboxFailed(RuntimeError):
    """The sandbox exited or did not listen in time; the message carries its output."""


@contextmanager
def running(args: list[str], timeout: float = 120) -> Iterator[dict[str, str]]:
    """``python -m sandbox <args>`` until the block ends; yields {service: base URL}."""
    with tempfile.TemporaryDirectory(prefix="sandbox-") as workdir:
        ports_file = Path(workdir) / "ports.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "sandbox", "--ports-file", str(ports_file), *args],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while not ports_file.exists():
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    raise SandboxFailed(f"the sandbox did not start: {process.communicate()[1].strip()}")
                time.sleep(0.05)
            yield json.loads(ports_file.read_text())
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
