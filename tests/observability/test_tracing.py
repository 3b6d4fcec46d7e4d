"""OpenTelemetry spans of real `scrapy crawl` runs against the sandbox (OTEL_ENABLED=true).

OTEL_TRACES_EXPORTER=console makes the extension print every span as a JSON
object on stdout as it ends; the tests read those and check the span tree:
``crawl.request`` -> ``crawl.item`` (child, same trace) and ``db.flush``
linked to the item spans it covers.
"""

from __future__ import annotations

import json
import uuid

import pytest

from sandbox.population import default_population
from support import http, options

pytest.importorskip("opentelemetry.sdk.trace", reason="tracing is optional: opentelemetry-sdk is not installed")


def traced(env: dict) -> dict:
    return {**env, "OTEL_ENABLED": "true", "OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "crawler-tests"}


def printed_spans(stdout: str) -> list[dict]:
    """The spans ConsoleSpanExporter printed: (indented) JSON objects, one after another."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (at := stdout.find("{", at)) != -1:
        try:
            value, at = decoder.raw_decode(stdout, at)
        except json.JSONDecodeError:
            at += 1
            continue
        if isinstance(value, dict) and "name" in value and "context" in value:
            spans.append(value)
    return spans


def named(spans: list[dict], name: str) -> list[dict]:
    return [s for s in spans if s["name"] == name]


def lab_tenant(lab_url: str, **config) -> str:
    base = f"{lab_url}/t/{uuid.uuid4().hex[:12]}"
    assert http(f"{base}/config", data=config).status == 200
    return base


def test_fetch_spans_request_then_item_with_one_span_per_retry(scrapy_cmd, crawl_env, sandbox):
    # every URL fails once with 503, then answers: 3 URLs = 6 download attempts, 3 items
    base = lab_tenant(sandbox["lab"], fail_mode="first_n", fail_n=1, fail_status=503)
    result = scrapy_cmd(
        [
            "crawl",
            "fetch",
            "-a",
            f"url_template={base}/json/{{n}}",
            "-a",
            "count=3",
            "-s",
            "RETRY_BACKOFF_BASE=0",
            "-s",
            "CIRCUIT_ENABLED=false",
        ],
        traced(crawl_env),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Error caught on signal handler" not in result.stderr, result.stderr[-3000:]
    assert "ended span" not in result.stderr  # no attribute set on a span already ended
    spans = printed_spans(result.stdout)

    requests = named(spans, "crawl.request")
    assert len(requests) == 6, [s["attributes"] for s in requests]
    host = base.split("//", 1)[1].split(":", 1)[0]
    for span in requests:
        attributes = span["attributes"]
        assert attributes["server.address"] == host
        assert attributes["http.request.method"] == "GET"
        assert attributes["crawler.spider"] == "fetch"
        assert span["parent_id"] is None and span["end_time"] is not None
    assert sorted(s["attributes"]["http.response.status_code"] for s in requests) == [200] * 3 + [503] * 3
    # never the URL path (broker URLs carry names): not in any attribute, nowhere in the output
    tenant = base.rsplit("/", 1)[1]
    assert tenant not in result.stdout and "/json/" not in result.stdout

    # a retry is its own span, linked to the failed attempt before it
    by_id = {s["context"]["span_id"]: s for s in requests}
    retries = [s for s in requests if s["attributes"]["http.request.resend_count"] == 1]
    assert len(retries) == 3
    for retry in retries:
        assert retry["attributes"]["http.response.status_code"] == 200
        [link] = retry["links"]
        assert by_id[link["context"]["span_id"]]["attributes"]["http.response.status_code"] == 503

    # each item is a child of the request span that produced its response: same trace, parent span id
    items = named(spans, "crawl.item")
    assert len(items) == 3
    for item in items:
        parent = by_id[item["parent_id"]]
        assert parent["context"]["trace_id"] == item["context"]["trace_id"]
        assert parent["attributes"]["http.response.status_code"] == 200
    assert {i["parent_id"] for i in items} == {r["context"]["span_id"] for r in retries}
    assert not named(spans, "db.flush")  # fetch stores nothing
    assert {s["resource"]["attributes"]["service.name"] for s in spans} == {"crawler-tests"}


def test_example_crawl_links_database_flushes_to_item_spans(scrapy_cmd, crawl_env, sandbox):
    population = default_population()
    person = next(p for p in population.people if len(population.search(p.first_name, p.last_name)) >= 2)
    result = scrapy_cmd(
        [
            "crawl",
            "example",
            *options(
                {
                    "first_name": person.first_name,
                    "last_name": person.last_name,
                    "scan_id": uuid.uuid4(),
                    "base_url": sandbox["directory"],
                },
                {"SCREENSHOTS_ENABLED": "false"},
            ),
        ],
        traced(crawl_env),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Error caught on signal handler" not in result.stderr, result.stderr[-3000:]
    spans = printed_spans(result.stdout)

    requests = {s["context"]["span_id"]: s for s in named(spans, "crawl.request")}
    assert requests and all(s["attributes"]["http.response.status_code"] == 200 for s in requests.values())
    items = named(spans, "crawl.item")
    assert items
    # the item as it left the last pipeline: a listing encrypted into findings rows
    listings = [i for i in items if i["attributes"]["crawler.item_type"] == "TableRows"]
    assert listings, [i["attributes"] for i in items]
    for item in items:
        parent = requests[item["parent_id"]]
        assert parent["context"]["trace_id"] == item["context"]["trace_id"]

    flushes = named(spans, "db.flush")
    assert flushes and all(f["attributes"]["db.rows"] > 0 for f in flushes)
    assert all(f["attributes"]["db.system"] == "postgresql" for f in flushes)
    linked = [link["context"]["span_id"] for f in flushes for link in f["links"]]
    item_ids = {i["context"]["span_id"] for i in items}
    assert linked and set(linked) <= item_ids
    assert {i["context"]["span_id"] for i in listings} <= set(linked)  # every listing's rows were flushed
    # personal data stays out of the spans (names are in the URLs and items, never in attributes)
    assert person.last_name not in result.stdout
