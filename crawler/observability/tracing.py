"""Extension: optional OpenTelemetry traces of request -> item -> database write.

Off unless OTEL_ENABLED is true. OpenTelemetry is not a run-time dependency of
the project: install ``opentelemetry-sdk`` (and ``opentelemetry-exporter-otlp-proto-http``
to ship spans to a collector; the SDK reads its standard OTEL_EXPORTER_OTLP_*
and OTEL_SERVICE_NAME variables itself). Without the packages, the crawl says so
once and runs untraced. ``OTEL_TRACES_EXPORTER=console`` (the SDK's standard
variable) prints each span as JSON on stdout as it ends (ConsoleSpanExporter with
a SimpleSpanProcessor) instead of sending it over OTLP: to look at traces without
a collector.

Spans: ``crawl.request`` for each download attempt, from the downloader to the
response (host, method and status, never the URL path: broker URLs carry names;
a retry is a new span linked to the attempt before it); ``crawl.item`` as its
child when an item has passed every pipeline; ``db.flush`` for each BulkWriter
transaction, linked to the item spans scraped since the flush before (at most
MAX_LINKS; an item whose rows a background flush took before it left the
pipelines is linked from the next flush). A provider configured by the
application (e.g. ``opentelemetry-instrument``) is used as is.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from urllib.parse import urlsplit

from scrapy import signals
from scrapy.exceptions import NotConfigured

from crawler.config import flag

logger = logging.getLogger(__name__)

SPAN_META = "_otel_span"
MAX_LINKS = 128  # item spans linked from one flush span


def load_opentelemetry():
    """(trace module, tracer provider) or None when the packages are missing."""
    try:
        from opentelemetry import trace  # optional
    except ImportError:
        return None
    if type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider":  # nobody configured one
        try:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            return trace, trace.get_tracer_provider()  # API only: spans are no-ops
        provider = TracerProvider()
        # the SDK's own variable, read here as the SDK reads its OTEL_* variables (not a project setting)
        if os.environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))  # printed as each span ends
        else:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            except ImportError:
                logger.warning("OTEL_ENABLED: no OTLP exporter installed; spans are recorded but not exported")
        trace.set_tracer_provider(provider)
    return trace, trace.get_tracer_provider()


class Tracing:
    def __init__(self, crawler, trace, provider):
        self.crawler = crawler
        self.trace = trace
        self.provider = provider
        self.tracer = trace.get_tracer("crawler")
        self.pending_links: list = []
        self.spans: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # request -> its crawl.request span

    @classmethod
    def from_crawler(cls, crawler):
        if not flag(crawler.settings, "OTEL_ENABLED"):
            raise NotConfigured("OTEL_ENABLED is off")
        loaded = load_opentelemetry()
        if loaded is None:
            logger.warning(
                "OTEL_ENABLED is set but the opentelemetry packages are not installed "
                "(pip install opentelemetry-sdk): running without tracing"
            )
            raise NotConfigured("opentelemetry is not installed")
        tracing = cls(crawler, *loaded)
        crawler.signals.connect(tracing.request_reached, signal=signals.request_reached_downloader)
        crawler.signals.connect(tracing.response_downloaded, signal=signals.response_downloaded)
        crawler.signals.connect(tracing.request_left, signal=signals.request_left_downloader)
        crawler.signals.connect(tracing.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(tracing.spider_closed, signal=signals.spider_closed)
        from crawler.db.writer import BulkWriter

        BulkWriter.for_crawler(crawler).flush_observers.append(tracing.flushed)
        return tracing

    def request_reached(self, request, spider) -> None:
        # one span per download attempt; a retry (a copy of the request, meta included) links to the attempt before
        previous = request.meta.get(SPAN_META)
        links = None
        if previous and previous[0]:  # trace id 0: API without SDK, nothing to link to
            trace_id, span_id, flags = previous
            links = [self.trace.Link(self.trace.SpanContext(trace_id, span_id, False, self.trace.TraceFlags(flags)))]
        span = self.tracer.start_span(
            "crawl.request",
            links=links,
            attributes={
                "http.request.method": request.method,
                "server.address": urlsplit(request.url).hostname or "",
                "crawler.spider": spider.name,
                "http.request.resend_count": request.meta.get("retry_times", 0),
            },
        )
        self.spans[request] = span
        # only plain numbers in meta: a request that is retried goes back through the scheduler, which may
        # serialise it (the Redis scheduler pickles requests; a Span does not pickle)
        context = span.get_span_context()
        request.meta[SPAN_META] = (context.trace_id, context.span_id, int(context.trace_flags))

    def response_downloaded(self, response, request, spider) -> None:
        # this attempt's status, before the downloader middlewares (retries) see it; sent before request_left
        span = self.spans.get(request)
        if span is not None and span.is_recording():
            span.set_attribute("http.response.status_code", response.status)

    def request_left(self, request, spider) -> None:
        span = self.spans.get(request)
        if span is not None and span.is_recording():
            span.end()

    def item_scraped(self, item, response, spider) -> None:
        request = getattr(response, "request", None)  # a Response, or a Failure (errback) that carries the request
        parent = self.spans.get(request) if request is not None else None
        context = self.trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            "crawl.item", context=context, attributes={"crawler.item_type": type(item).__name__}
        )
        span.end()
        if len(self.pending_links) < MAX_LINKS:
            self.pending_links.append(self.trace.Link(span.get_span_context()))

    def flushed(self, seconds: float, rows: int) -> None:
        links, self.pending_links = self.pending_links, []
        end = time.time_ns()
        span = self.tracer.start_span(
            "db.flush",
            links=links,
            start_time=end - int(seconds * 1e9),
            attributes={"db.system": "postgresql", "db.rows": rows},
        )
        span.end(end_time=end)

    def spider_closed(self, spider) -> None:
        flush = getattr(self.provider, "force_flush", None)
        if flush is not None:
            flush()
