"""crawler.scans.classify_failure: the scan error kind of a spider errback's failure."""

import pytest
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
)
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import error
from twisted.python.failure import Failure

from crawler.scans import ERROR_KINDS, classify_failure, site_outcome


def failure_of(exc, request=None):
    try:
        raise exc
    except Exception:
        failure = Failure()
    failure.request = request
    return failure


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
    assert kind in ERROR_KINDS


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
