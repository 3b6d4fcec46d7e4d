"""The mail provider interface and the API provider's parts, without a crawl (see test_mail_api_crawl.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest
from scrapy import Request
from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError, DownloadTimeoutError
from scrapy.http import HtmlResponse, Response
from scrapy.settings import Settings
from twisted.internet.error import ConnectionLost, TCPTimedOutError
from twisted.web._newclient import ResponseNeverReceived

import crawler.settings as project_settings
from crawler.removal.mail import (
    MailOutcomeUnknown,
    MailProvider,
    MailRejected,
    MailUnavailable,
    mail_spider_settings,
    provider_from_crawler,
)
from crawler.removal.mail.api import (
    MAIL_META,
    NO_HOST,
    ApiProvider,
    MailDeferralWait,
    MailDepartureSpacing,
    MailLostAnswer,
    answer_lost,
    api_key,
    pace_seconds,
)
from crawler.scheduling.deferring import DEFER_REASON, DEFER_UNTIL
from middlewares.auth_token import AuthTokenMiddleware

pytestmark = pytest.mark.unit

SECRET_BODY = "verify token SECRET123 to continue"


def project(**overrides) -> Settings:
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    settings.update(overrides, priority="cmdline")
    return settings


def crawler_with(settings: Settings):
    """What the provider uses of a crawler: its settings (and its engine, none here: no crawl runs)."""
    return SimpleNamespace(settings=settings, engine=None)


def mail_crawler(**overrides):
    settings = project(MAIL_API_URL="http://mail.example:8406/", **overrides)
    settings.update(mail_spider_settings(settings), priority="spider")
    return crawler_with(settings)


def answer(status: int, body: bytes) -> Response:
    return Response("http://mail.example:8406/send-email", status=status, body=body)


def test_spider_settings_point_the_middlewares_at_the_mail_api_only():
    settings = project(MAIL_API_URL="https://mail.example/v1/", MAIL_API_CLIENT_ID="id", MAIL_API_CLIENT_SECRET="s")
    overrides = mail_spider_settings(settings)
    assert overrides["AUTH_TOKEN_URL"] == "https://mail.example/v1/auth/token"
    assert (overrides["AUTH_CLIENT_ID"], overrides["AUTH_CLIENT_SECRET"]) == ("id", "s")
    assert overrides["AUTH_DOMAINS"] == NO_HOST  # no host gets the token unless the request asks (sends do)
    middlewares = overrides["DOWNLOADER_MIDDLEWARES"]
    assert middlewares["middlewares.retry.RetryMiddleware"] == 550  # the project's own are kept
    assert middlewares["crawler.removal.mail.api.MailDeferralWait"] < 550 < 575
    assert middlewares["crawler.removal.mail.api.MailDepartureSpacing"] > 575  # after the token is attached
    assert middlewares["crawler.removal.mail.api.MailLostAnswer"] > 575  # its exceptions reach it before retry
    assert mail_spider_settings(project(MAIL_PROVIDER="smtp")) == {}


def test_the_token_goes_to_sends_only_not_to_the_spiders_sites_on_the_same_host():
    settings = project(MAIL_API_URL="http://127.0.0.1:8406")
    settings.update(mail_spider_settings(settings), priority="spider")
    spider = SimpleNamespace(allowed_domains=["127.0.0.1"])  # the sandbox's brokers share the host
    auth = AuthTokenMiddleware(SimpleNamespace(settings=settings, stats=None, spider=spider))
    send = ApiProvider(SimpleNamespace(settings=settings, engine=None)).request("a@example.org", "S", "B")
    assert auth.applies(send)
    assert not auth.applies(Request("http://127.0.0.1:8401/removal"))
    assert not auth.applies(Request("http://127.0.0.1:8406/other"))


def test_the_provider_is_chosen_by_setting_and_needs_the_spider_settings():
    provider = provider_from_crawler(mail_crawler())
    assert isinstance(provider, ApiProvider) and isinstance(provider, MailProvider)
    with pytest.raises(ValueError, match="mail_spider_settings"):
        provider_from_crawler(crawler_with(project(MAIL_PROVIDER="api")))
    with pytest.raises(ValueError, match="unknown provider 'fax'"):
        provider_from_crawler(crawler_with(Settings({"MAIL_PROVIDER": "fax"})))


def test_a_send_is_paced_keyed_by_host_and_port_and_carries_credentials_only_itself():
    provider = provider_from_crawler(mail_crawler(MAIL_API_MIN_INTERVAL_SECONDS="10"))
    request = provider.request("a@example.org", "Subject", SECRET_BODY)
    assert request.url == "http://mail.example:8406/send-email" and request.method == "POST"
    assert request.meta[MAIL_META] and request.meta["auth"] is True and request.meta["dont_redirect"]
    assert request.meta["ratelimit_key"] == "mail-api:mail.example:8406"
    assert request.meta["ratelimit_rps"] == pytest.approx(1 / 10.3)
    assert request.headers["Connection"] == b"close"
    assert api_key("https://mail.example/v1") == "mail-api:mail.example:443"
    assert pace_seconds(1) == pytest.approx(1.03) and pace_seconds(0.5) == pytest.approx(0.52) and pace_seconds(0) == 0
    assert provider_from_crawler(mail_crawler(MAIL_API_MIN_INTERVAL_SECONDS="0")).rps == 1000


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (202, b'{"message_id": "msg_1"}', "msg_1"),
        (200, b'{"message_id": "msg_2"}', "msg_2"),
        (202, b"not json", ""),
        (400, b'{"error": "invalid_address"}', MailRejected("mail API refused the message: 400 (invalid_address)")),
        (422, b'{"error": "Bad <a@example.org>"}', MailRejected("mail API refused the message: 422")),
        (503, b'{"error": "unavailable"}', MailUnavailable("mail API answered 503 (unavailable) (after retries)")),
        (429, b"[]", MailUnavailable("mail API answered 429 (after retries)")),
        (401, b"", MailUnavailable("mail API answered 401 (after retries)")),
        (500, b"", MailOutcomeUnknown("mail API answered 500; it may have been accepted")),
        (504, b"", MailOutcomeUnknown("mail API answered 504; it may have been accepted")),
    ],
)
def test_answers_become_a_message_id_or_a_mail_error(status, body, outcome):
    if isinstance(outcome, str):
        assert ApiProvider.outcome(answer(status, body)) == outcome
        return
    with pytest.raises(type(outcome)) as raised:
        ApiProvider.outcome(answer(status, body))
    assert raised.value.reason == outcome.reason


def test_only_failures_to_connect_are_known_not_to_have_been_sent():
    for never_sent in (DownloadConnectionRefusedError(), CannotResolveHostError(), TCPTimedOutError()):
        assert not answer_lost(never_sent)
    for maybe_sent in (DownloadTimeoutError(), ConnectionLost(), ResponseNeverReceived([]), OSError()):
        assert answer_lost(maybe_sent)


async def test_a_lost_answer_is_not_retried_and_nothing_secret_is_logged(caplog):
    caplog.set_level(logging.DEBUG)
    guard = MailLostAnswer()
    send = Request("http://mail.example/send-email", method="POST", body=SECRET_BODY, meta={MAIL_META: True})
    assert guard.process_exception(send, ConnectionLost()) is None
    assert send.meta["dont_retry"] is True
    refused = Request("http://mail.example/send-email", method="POST", meta={MAIL_META: True})
    guard.process_exception(refused, DownloadConnectionRefusedError())
    other = Request("http://broker.example/page")
    guard.process_exception(other, ConnectionLost())
    assert "dont_retry" not in refused.meta and "dont_retry" not in other.meta
    assert "ConnectionLost" in caplog.text and SECRET_BODY not in caplog.text
    # a 500 or a gateway timeout may come after the provider took the send: not retried either
    for status, retried in ((500, False), (504, False), (503, True), (502, True)):
        answered = Request("http://mail.example/send-email", method="POST", meta={MAIL_META: True})
        guard.process_response(answered, HtmlResponse(answered.url, status=status))
        assert ("dont_retry" not in answered.meta) is retried, status


async def test_a_deferred_send_waits_here_and_other_requests_pass(caplog):
    caplog.set_level(logging.DEBUG)
    guard = MailDeferralWait()
    until = time.time() + 0.2
    send = Request("http://mail.example/send-email", body=SECRET_BODY, meta={MAIL_META: True, DEFER_UNTIL: until})
    send.meta[DEFER_REASON] = "retry"
    started = time.monotonic()
    assert await guard.process_request(send) is None
    assert time.time() >= until and DEFER_UNTIL not in send.meta and DEFER_REASON not in send.meta
    other = Request("http://broker.example/page", meta={DEFER_UNTIL: time.time() + 60})
    assert await asyncio.wait_for(guard.process_request(other), 1) is None
    assert DEFER_UNTIL in other.meta  # the scheduler's business, not ours
    assert time.monotonic() - started < 5 and SECRET_BODY not in caplog.text


async def test_a_send_leaves_only_after_the_previous_answer_and_the_pace_after_it():
    spacing = MailDepartureSpacing()
    meta = {MAIL_META: True, "ratelimit_rps": 10, "ratelimit_key": "mail-api:mail.example:80"}
    first, second = (Request("http://mail.example/send-email", meta=dict(meta)) for _ in range(2))
    assert await asyncio.wait_for(spacing.process_request(first), 5) is None  # nothing in flight before it
    waiting = asyncio.ensure_future(spacing.process_request(second))
    await asyncio.sleep(0.3)  # three paces: only the missing answer holds it back now
    assert not waiting.done()
    answered = time.monotonic()
    response = spacing.process_response(first, HtmlResponse(first.url, status=202, body=b"{}"))
    assert response.status == 202
    assert await asyncio.wait_for(waiting, 5) is None
    assert time.monotonic() - answered >= 0.1  # a full pace after the answer, not after the departure
    # a send that failed frees the key too
    assert spacing.process_exception(second, TimeoutError()) is None
    third = Request("http://mail.example/send-email", meta=dict(meta))
    assert await asyncio.wait_for(spacing.process_request(third), 5) is None
    other = Request("http://broker.example/page", meta={"ratelimit_rps": 10, "ratelimit_key": meta["ratelimit_key"]})
    assert await asyncio.wait_for(spacing.process_request(other), 1) is None  # not a send: not ours to pace


async def test_sending_needs_a_running_crawl():
    provider = provider_from_crawler(mail_crawler())
    with pytest.raises(RuntimeError, match="running crawl"):
        await provider.send("a@example.org", "S", SECRET_BODY)


def test_errors_carry_a_safe_reason():
    for cls in (MailRejected, MailUnavailable, MailOutcomeUnknown):
        error = cls("mail API answered 503")
        assert error.reason == str(error) == "mail API answered 503"
