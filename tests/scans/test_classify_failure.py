"""crawler.scans.classify_failure: the scan error kind of a spider errback's failure."""

import pytest
from scrapy import Spider
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.test import get_crawler
from twisted.internet import error
from twisted.python.failure import Failure

from crawler.scans import ScanContext, ScanTracker, Website, classify_failure, site_outcome
from crawler.signals import scan_error
from crawler.spider_args import PersonQuery


def failure_of(exc, request=None):
    try:
        raise exc
    except Exception:
        failure = Failure()
    failure.request = request
    return failure


def site_counters_after_errback(failure) -> dict:
    """The site's counters on the scan row once a spider's errback reported ``failure`` as
    classify_failure's docstring shows (scan_error with the kind)."""
    crawler = get_crawler(Spider)
    crawler.spider = Spider("probe")
    site = Website("site-a", "Site A", "http://127.0.0.1/")
    crawler.spider.scan = ScanContext("scan-1", PersonQuery("Ada", "Lovelace"), [site])
    tracker = ScanTracker.from_crawler(crawler)
    kind = classify_failure(failure)
    crawler.signals.send_catch_log(scan_error, scan_id="scan-1", site=None, kind=kind, request=failure.request)
    return tracker.counters()["site-a"]


def http_error(status):
    return HttpError(Response("http://127.0.0.1/x", status=status), "ignored")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (error.TimeoutError(), "timeout"),
        (error.TCPTimedOutError(), "timeout"),
        (http_error(404), "not_found"),
        (http_error(410), "not_found"),
        (http_error(429), "rate_limited"),
        (http_error(403), "blocked"),
        (http_error(503), "server_error"),
        (http_error(400), "http_error"),
        (error.DNSLookupError(), "unreachable"),
        (error.ConnectionRefusedError(), "unreachable"),
        (IgnoreRequest("gave up after 4 attempt(s): block_interstitial (dead letter recorded)"), "interstitial"),
        (DownloadTimeoutError(), "timeout"),
        (DownloadConnectionRefusedError(), "unreachable"),
        (CannotResolveHostError(), "unreachable"),
        (ValueError("boom"), "other"),
    ],
)
def test_failures_map_to_scan_error_kinds(exc, kind):
    assert classify_failure(failure_of(exc)) == kind
    # what a user sees: the lost page counted under that kind on the scan row, the site read as an error
    site = site_counters_after_errback(failure_of(exc, Request("http://127.0.0.1/page")))
    assert site["errors"] == {kind: 1} and site["outcome"] == "error"


def test_a_block_given_up_on_is_classified_by_the_request_meta():
    request = Request("http://127.0.0.1/InternalCaptcha", meta={"block": "captcha"})
    assert classify_failure(failure_of(IgnoreRequest("gave up"), request)) == "captcha"


def test_playwright_timeouts_are_timeouts():
    from playwright.async_api import Error, TimeoutError

    assert classify_failure(TimeoutError("Timeout 30000ms exceeded")) == "timeout"
    assert classify_failure(Error("Target closed")) == "browser_error"


def counters(**values):
    base = {"listings": 0, "accepted": 0, "rejected": 0, "stored": 0, "errors": {}, "blocks": {}}
    return {**base, **values}


@pytest.mark.parametrize(
    ("values", "outcome"),
    [
        ({}, "no_results"),
        ({"listings": 2, "rejected": 2}, "no_match"),
        ({"listings": 1, "accepted": 1, "stored": 1}, "found"),
        ({"errors": {"captcha": 1}}, "error"),  # a captcha whose retries ran out: the page is lost
        ({"blocks": {"interstitial": 1}}, "no_results"),  # passed with the cookie: the site's answer stands
        ({"listings": 1, "stored": 1, "errors": {"timeout": 1}}, "partial"),
        ({"listings": 1, "stored": 1, "blocks": {"captcha": 1}}, "found"),  # a block passed on retry lost nothing
    ],
)
def test_a_site_with_lost_pages_never_reads_as_no_results(values, outcome):
    assert site_outcome(counters(**values)) == outcome
