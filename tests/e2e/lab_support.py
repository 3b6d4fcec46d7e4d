"""Helpers for crawls against the sandbox lab: per-test tenants and a runspider wrapper."""

import json
import subprocess
import sys
import uuid

from support import ROOT, http


class Tenant:
    def __init__(self, lab_url: str, **config):
        self.base = f"{lab_url}/t/{uuid.uuid4().hex[:12]}"
        if config:
            self.configure(**config)

    def call(self, path: str, body=None):
        reply = http(f"{self.base}/{path}", data=body)
        assert reply.status == 200, reply.body
        return reply.json()

    def configure(self, **config):
        return self.call("config", config)

    def stats(self):
        return self.call("stats")


def fetch_command(base: str, path: str = "json", count: int = 10) -> list[str]:
    return [
        sys.executable,
        "-m",
        "scrapy",
        "crawl",
        "fetch",
        "-a",
        f"url_template={base}/{path}/{{n}}",
        "-a",
        f"count={count}",
    ]


def run_lab(
    env,
    tmp_path,
    base: str,
    path: str = "json",
    count: int = 10,
    settings: dict | None = None,
    timeout: float = 180,
    **args,
) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """`scrapy crawl fetch` over ``{base}/{path}/{n}`` with spider args and -s settings; returns (process, records)."""
    out = tmp_path / f"out-{uuid.uuid4().hex[:6]}.jsonl"
    command = [*fetch_command(base, path, count), "-O", f"{out}:jsonlines"]
    for name, value in args.items():
        command += ["-a", f"{name}={value}"]
    for name, value in (settings or {}).items():
        command += ["-s", f"{name}={value}"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    records = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return result, records
