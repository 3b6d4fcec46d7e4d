"""/metrics and /health of real `scrapy` workers against the sandbox."""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import time
import uuid

from prometheus_client.parser import text_string_to_metric_families

from support import REDIS_URL, ROOT, http, options

PORT_RE = re.compile(r"metrics and health on \S+ port (\d+)")


def lab_tenant(lab_url: str, **config) -> str:
    """A fresh tenant of the sandbox lab with this configuration; returns its base URL."""
    base = f"{lab_url}/t/{uuid.uuid4().hex[:12]}"
    assert http(f"{base}/config", data=config).status == 200
    return base


class Worker:
    def __init__(self, args: list[str], env: dict, tmp_path, command: str = "crawl"):
        self.log_path = tmp_path / f"worker-{uuid.uuid4().hex[:6]}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "scrapy", command, *args],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self._port: int | None = None

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def port(self) -> int:
        deadline = time.monotonic() + 60
        while self._port is None:
            if match := PORT_RE.search(self.text()):
                self._port = int(match.group(1))
            assert self.process.poll() is None and time.monotonic() < deadline, self.text()[-3000:]
            time.sleep(0.1)
        return self._port

    def samples(self) -> dict[tuple[str, tuple], float]:
        reply = http(f"http://127.0.0.1:{self.port}/metrics")
        assert reply.status == 200 and reply.headers["Content-Type"].startswith("text/plain")
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(reply.body.decode())
            for s in family.samples
        }

    def health(self, until_engine_runs: bool = True):
        """GET /health, once the engine runs (the first moments report "starting")."""
        deadline = time.monotonic() + 30
        while True:
            reply = http(f"http://127.0.0.1:{self.port}/health")
            if not until_engine_runs or reply.json()["checks"]["engine"]["state"] != "starting":
                return reply
            assert time.monotonic() < deadline, reply.body
            time.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(timeout=60)
        self.log.close()
        return code


def tracing_notice() -> str:
    """What a crawl with OTEL_ENABLED says once here (the SDK is a test requirement, the OTLP exporter is not)."""
    if importlib.util.find_spec("opentelemetry") is None or importlib.util.find_spec("opentelemetry.sdk") is None:
        return "opentelemetry packages are not installed"
    return "no OTLP exporter installed"


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def free_port_range(size: int) -> str:
    """``first-last`` of ``size`` consecutive ports free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        if first + size > 65535:
            continue
        try:
            sockets = []
            for port in range(first, first + size):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return f"{first}-{first + size - 1}"
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


def test_metrics_move_during_a_scan(sandbox, crawl_env, tmp_path):
    person = {"first_name": "John", "last_name": "Smith", "base_url": sandbox["directory"]}
    settings = {
        "METRICS_PORT": 0,
        "DOWNLOAD_DELAY": 0.2,
        "CONCURRENT_REQUESTS": 2,
        "PG_FLUSH_SECONDS": 0.2,
        "LOG_LEVEL": "INFO",
        "OTEL_ENABLED": "true",
        # screenshots wait on the scheduler, which a SIGTERM stops: see the shutdown notes in the README
        "SCREENSHOTS_ENABLED": "false",
    }
    args = ["example", *options(person, settings)]
    worker = Worker(args, crawl_env, tmp_path)
    try:
        deadline = time.monotonic() + 120  # generous: CI machines run several crawls at once
        while value(first := worker.samples(), "crawler_items_total", site="directory") < 2:
            assert time.monotonic() < deadline, worker.text()[-3000:]
            time.sleep(0.1)
        items = value(first, "crawler_items_total", site="directory")
        while value(later := worker.samples(), "crawler_items_total", site="directory") < items + 2:
            assert time.monotonic() < deadline, worker.text()[-3000:]
            time.sleep(0.2)
        assert worker.health().status == 200
    finally:
        code = worker.stop()
    assert code == 0, worker.text()[-3000:]
    for name, labels in (
        ("crawler_requests_total", {}),
        ("crawler_responses_total", {"status": "200"}),
        ("crawler_items_total", {"site": "directory"}),
    ):
        assert value(later, name, **labels) > value(first, name, **labels) > 0, name
    assert value(later, "crawler_pipeline_flush_seconds_count") >= 1
    assert (
        value(later, "crawler_db_rows_written_total", table="rejected_candidates")
        + value(later, "crawler_db_rows_written_total", table="findings")
        > 0
    )
    assert value(later, "crawler_engine_running") == 1
    assert ("crawler_queue_depth", ()) in later and ("crawler_requests_in_flight", ()) in later
    assert value(later, "process_resident_memory_bytes") > 0
    # optional tracing without the packages it needs: said once, and the crawl went on
    assert worker.text().count(tracing_notice()) == 1


def test_health_answers_503_when_redis_is_unreachable(sandbox, crawl_env, tmp_path):
    ports = free_port_range(3)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        dead_redis = f"redis://127.0.0.1:{closed.getsockname()[1]}/0"
    base = lab_tenant(sandbox["lab"], delay=10)
    common = [
        "-a",
        f"url_template={base}/json/{{n}}",
        "-a",
        "count=2",
        "-a",
        "ratelimit_rps=1000",
        "-s",
        f"METRICS_PORT={ports}",
        "-s",
        "HEALTH_TIMEOUT_SECONDS=1",
    ]
    healthy = Worker(["fetch", *common, "-s", f"REDIS_URL={REDIS_URL}"], crawl_env, tmp_path)
    # `scrapy crawl` refuses to start without Redis; runspider skips that check: Redis lost mid-crawl
    broken = Worker(
        ["spiders/fetch.py", *common, "-s", f"REDIS_URL={dead_redis}"], crawl_env, tmp_path, command="runspider"
    )
    try:
        assert healthy.port != broken.port and {healthy.port, broken.port} <= set(
            range(int(ports.split("-")[0]), int(ports.split("-")[1]) + 1)
        )
        good = healthy.health()
        assert good.status == 200, good.body
        checks = good.json()["checks"]
        assert checks["redis"]["ok"] and checks["postgres"]["ok"] and checks["engine"]["ok"]
        bad = broken.health()
        assert bad.status == 503, bad.body
        checks = bad.json()["checks"]
        assert checks["redis"]["ok"] is False and "error" in checks["redis"]
        assert checks["postgres"]["ok"] and checks["engine"]["ok"]
        assert bad.json()["status"] == "unhealthy"
    finally:
        healthy.process.kill()
        broken.process.kill()
        healthy.stop()
        broken.stop()


def test_a_bad_metrics_port_stops_the_crawl_with_one_line(crawl_env):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "scrapy",
            "crawl",
            "fetch",
            "-a",
            "urls=http://127.0.0.1:9/",
            "-s",
            "METRICS_PORT=9500-9400",
        ],
        cwd=ROOT,
        env=crawl_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: METRICS_PORT: expected ports in 1-65535")
