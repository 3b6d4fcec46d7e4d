"""The slowdown middleware on a real Scrapy crawler: a captcha pauses the key and cuts its rate, once per incident."""

import time

import pytest
from scrapy import Request, Spider
from scrapy.http import HtmlResponse
from scrapy.utils.project import get_project_settings
from scrapy.utils.test import get_crawler

from middlewares.slowdown import BlockSlowdownMiddleware


class Site(Spider):
    name = "site"
    ratelimit_rps = 2.0


def middleware(**settings):
    project = {k: v for k, v in get_project_settings().items() if k.startswith(("SLOWDOWN_", "RATELIMIT_"))}
    crawler = get_crawler(Site, {**project, "SLOWDOWN_PAUSE_SECONDS": "0.3", **settings})
    crawler.spider = crawler._create_spider()
    crawler.stats.open_spider()
    return BlockSlowdownMiddleware.from_crawler(crawler), crawler


def blocked(url: str, kind: str = "captcha", headers=None) -> tuple[Request, HtmlResponse]:
    request = Request(url, meta={"block": kind})
    return request, HtmlResponse(url, body=b"<div class='g-recaptcha'></div>", headers=headers, request=request)


async def test_a_captcha_pauses_the_key_and_halves_its_rate():
    mw, crawler = middleware()
    before = Request("https://broker.example/results")
    assert await mw.process_request(before) is None and "ratelimit_rps" not in before.meta  # nothing to slow yet
    mw.process_response(*blocked("https://broker.example/InternalCaptcha"))
    assert crawler.stats.get_value("slowdown/cuts/captcha") == 1
    later = Request("https://broker.example/find/person/px1")
    started = time.monotonic()
    assert await mw.process_request(later) is None
    assert time.monotonic() - started >= 0.25  # waited out the pause
    assert later.meta["ratelimit_rps"] == pytest.approx(1.0)
    other = Request("https://other.example/")
    assert await mw.process_request(other) is None and "ratelimit_rps" not in other.meta  # other hosts untouched


async def test_blocks_during_the_pause_are_one_incident_and_later_ones_cut_again():
    mw, crawler = middleware()
    for _ in range(3):  # answers of requests that were on their way when the first captcha came
        mw.process_response(*blocked("https://broker.example/x"))
    assert crawler.stats.get_value("slowdown/cuts") == 1
    mw.keys["broker.example"].paused_until = 0  # the pause is over
    mw.process_response(*blocked("https://broker.example/y"))
    assert crawler.stats.get_value("slowdown/cuts") == 2
    assert mw.keys["broker.example"].rps == pytest.approx(0.5)


async def test_the_rate_never_drops_below_the_minimum_and_retry_after_lengthens_the_pause():
    mw, _ = middleware(SLOWDOWN_MIN_RPS="0.8")
    mw.process_response(*blocked("https://broker.example/x", headers={"Retry-After": "7"}))
    state = mw.keys["broker.example"]
    assert state.rps == pytest.approx(1.0)
    assert 6 < state.paused_until - time.monotonic() <= 7
    state.paused_until = 0
    mw.process_response(*blocked("https://broker.example/x"))
    assert state.rps == pytest.approx(0.8)


async def test_other_block_kinds_and_clean_pages_change_nothing():
    mw, crawler = middleware()
    mw.process_response(*blocked("https://broker.example/x", kind="rate_limited"))
    request = Request("https://broker.example/ok")
    mw.process_response(request, HtmlResponse(request.url, body=b"<p>ok</p>", request=request))
    assert mw.keys == {} and crawler.stats.get_value("slowdown/cuts") is None


def test_switched_off_by_its_setting():
    from scrapy.exceptions import NotConfigured

    with pytest.raises(NotConfigured):
        middleware(SLOWDOWN_ENABLED="false")
