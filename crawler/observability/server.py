"""Extension: ``/metrics`` (Prometheus text format) and ``/health`` (JSON) of this worker.

    METRICS_PORT=""         off (the default: a single local crawl needs no listener)
    METRICS_PORT=9410       that port (taken: an error in the log, the crawl goes on)
    METRICS_PORT=9410-9419  the first free port of the range: several workers on one
                            machine, one scrape config listing the range
    METRICS_PORT=0          any free port
    METRICS_HOST=127.0.0.1  bind address (0.0.0.0 to be scraped from other machines)

The chosen port is logged ("metrics and health on 127.0.0.1 port N") and kept in
the ``metrics/port`` stat. The server is aiohttp on the reactor's own asyncio loop,
so handlers read engine state on the engine's thread and nothing blocks the
crawl; it starts with the engine and stops once the engine has stopped, so the
final figures (and a 503 from /health while draining) can still be read during
a graceful shutdown.
"""

from __future__ import annotations

import errno
import logging

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler.observability.health import HealthCheck
from crawler.observability.metrics import CrawlMetrics
from crawler.observability.ports import PortsError, parse_ports

logger = logging.getLogger(__name__)


class ObservabilityServer:
    def __init__(self, crawler, host: str, ports: list[int]):
        self.crawler = crawler
        self.host = host
        self.ports = ports
        self.metrics = CrawlMetrics.from_crawler(crawler)
        self.health = HealthCheck.from_crawler(crawler)
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    @classmethod
    def from_crawler(cls, crawler):
        try:
            ports = parse_ports(crawler.settings.get("METRICS_PORT"))
        except PortsError as exc:
            raise NotConfigured(f"METRICS_PORT: {exc}") from None  # config.validate reports it first
        if ports is None:
            raise NotConfigured("METRICS_PORT is empty")
        server = cls(crawler, crawler.settings.get("METRICS_HOST") or "127.0.0.1", ports)
        crawler.signals.connect(server.engine_started, signal=signals.engine_started)
        crawler.signals.connect(server.engine_stopped, signal=signals.engine_stopped)
        return server

    async def serve_metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(self.metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def serve_health(self, _request: web.Request) -> web.Response:
        healthy, report = await self.health.check()
        return web.Response(body=orjson.dumps(report), status=200 if healthy else 503, content_type="application/json")

    async def engine_started(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self.serve_metrics)
        app.router.add_get("/health", self.serve_health)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        for port in self.ports:
            site = web.TCPSite(runner, self.host, port)
            try:
                await site.start()
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE and port != self.ports[-1]:
                    continue
                await runner.cleanup()
                logger.error("metrics and health: cannot listen on %s port %s: %s", self.host, port, exc.strerror)
                self.crawler.stats.set_value("metrics/port", None)
                return
            self.port = runner.addresses[0][1]  # the real one when port 0 was asked
            break
        self.runner = runner
        self.crawler.stats.set_value("metrics/port", self.port)
        logger.info("metrics and health on %s port %d (/metrics, /health)", self.host, self.port)

    async def engine_stopped(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
