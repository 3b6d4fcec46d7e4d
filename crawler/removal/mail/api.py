"""The e-mail API provider: ``POST MAIL_API_URL/send-email`` as a Scrapy request of the running crawl.

A send is a ``scrapy.Request`` downloaded with ``crawler.engine.download_async``, so the
project's downloader middlewares do the API's chores and this module does none of them:

- auth_token.py: the bearer token from ``MAIL_API_URL/auth/token`` (MAIL_API_CLIENT_ID/SECRET),
  renewed before it expires and at once on a 401 (one refresh in flight), the send replayed;
- rate_limit.py: the published pace (``MAIL_API_MIN_INTERVAL_SECONDS`` between sends, plus a
  small margin so the provider's own clock never sees a send early), a ``Retry-After`` pausing
  the key; the key is the API's host and port, so other services on the same host keep theirs;
- retry.py: 429 and 5xx retried with backoff (never shorter than ``Retry-After``), then a dead
  letter (the request encrypted, without its token).

``mail_spider_settings`` (crawler/removal/mail/__init__.py) points the auth middleware at the
mail API. Credentials go only to the sends themselves (``meta["auth"] = True``): AUTH_DOMAINS is
set to a reserved name no host has, so pages of other sites on the same host (the sandbox's
brokers run on 127.0.0.1 too) never get the mail token.

Three small middlewares close the gaps of the engine's direct download (only for sends):

- ``MailDeferralWait`` (first in line): ``download_async`` re-downloads at once a request a
  middleware hands back, so a deferral (a retry's backoff, a long rate-limit wait) would be
  skipped; it waits here instead, without holding a download slot.
- ``MailDepartureSpacing`` (after auth_token.py): the rate limiter spaces the slots it grants,
  but a send can leave or arrive late (its token was renewed on the way, the machine was busy) and
  the next one on time, which the provider, counting from its last accepted send, would see early.
  This keeps one send in flight and the pace from each answer to the next departure (in process;
  the shared pace is the limiter's).
- ``MailLostAnswer`` (sees exceptions before retry.py): a send that failed after it may have
  left (connection lost or closed, timeout) is not retried, since the provider may have
  accepted it; the provider raises ``MailOutcomeUnknown``. A send that never left (refused,
  unresolvable) is retried as usual. Every send goes on a fresh connection
  (``Connection: close``), so a pooled connection the server closed while idle is never mistaken
  for a lost answer.

Nothing here logs an address, a subject, a body or a token: reasons carry statuses and error
classes only, and the middlewares above log URLs and counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from urllib.parse import urlsplit

import orjson
from scrapy import Request
from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError, IgnoreRequest
from twisted.internet.error import ConnectError, DNSLookupError

from crawler.removal.mail.errors import MailOutcomeUnknown, MailRejected, MailUnavailable
from crawler.scheduling.deferring import DEFER_REASON, DEFER_UNTIL

logger = logging.getLogger(__name__)

MAIL_META = "mail_api_send"  # meta: this request is a send (the guards below act on these only)
NO_HOST = "mail-api-credentials.invalid"  # AUTH_DOMAINS: matches no host (RFC 2606 .invalid)
ACCEPTED = frozenset({200, 201, 202})
REJECTED = frozenset({400, 413, 422})  # the message itself is refused: the same send fails again
# the provider (or a gateway before it) may have taken the send before failing: retrying could send it twice
MAYBE_ACCEPTED = frozenset({500, 504, 524})
NEVER_SENT = (DownloadConnectionRefusedError, CannotResolveHostError, ConnectError, DNSLookupError)
SPACING_KEY = "_mail_spacing_key"  # meta: the send is in flight for this rate-limit key
SAFE_CODE = re.compile(r"^[a-z][a-z0-9_]{0,40}$")  # an error code from the API's JSON, never free text


def answer_lost(exc: BaseException) -> bool:
    """True when the send may have reached the provider: anything but a failure to connect."""
    return not isinstance(exc, NEVER_SENT)


def pace_seconds(interval: float) -> float:
    """The spacing kept between sends: the published interval plus a margin (3 %, at least 20 ms),
    so a send that leaves a few milliseconds late does not make the next one early for the server."""
    return interval + max(0.02, 0.03 * interval) if interval > 0 else 0.0


def api_spider_settings(settings) -> dict:
    """The overrides of ``mail_spider_settings`` for ``MAIL_PROVIDER=api``."""
    base = settings.get("MAIL_API_URL").rstrip("/")
    middlewares = dict(settings.getdict("DOWNLOADER_MIDDLEWARES"))
    middlewares.update(
        {
            f"{__name__}.MailDeferralWait": 540,  # before retry (550): first to see a deferred copy
            f"{__name__}.MailDepartureSpacing": 578,  # after auth (575): the last wait before leaving
            f"{__name__}.MailLostAnswer": 580,  # exceptions go bottom-up: before auth, rate limit, retry
        }
    )
    return {
        "AUTH_TOKEN_URL": f"{base}/auth/token",
        "AUTH_CLIENT_ID": settings.get("MAIL_API_CLIENT_ID"),
        "AUTH_CLIENT_SECRET": settings.get("MAIL_API_CLIENT_SECRET"),
        "AUTH_DOMAINS": NO_HOST,
        "DOWNLOADER_MIDDLEWARES": middlewares,
    }


def api_key(url: str) -> str:
    """The rate-limit key of the API: host and port (the host alone would pace every sandbox site)."""
    parts = urlsplit(url)
    return f"mail-api:{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


class ApiProvider:
    """``send`` = one POST /send-email through the crawler's engine; see the module docstring."""

    def __init__(self, crawler):
        settings = crawler.settings
        self.crawler = crawler
        self.base = settings.get("MAIL_API_URL").rstrip("/")
        self.sender = settings.get("MAIL_FROM")
        self.key = api_key(self.base)
        pace = pace_seconds(settings.getfloat("MAIL_API_MIN_INTERVAL_SECONDS"))
        self.rps = 1 / pace if pace > 0 else 1000.0
        if settings.get("AUTH_TOKEN_URL") != f"{self.base}/auth/token":
            raise ValueError(
                "MAIL_PROVIDER=api: the spider's settings do not point the auth-token middleware at "
                "MAIL_API_URL; merge crawler.removal.mail.mail_spider_settings(settings) in its update_settings"
            )

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def request(self, to: str, subject: str, body: str) -> Request:
        return Request(
            f"{self.base}/send-email",
            method="POST",
            body=orjson.dumps({"to": to, "subject": subject, "body": body, "from": self.sender}),
            headers={"Content-Type": "application/json", "Accept": "application/json", "Connection": "close"},
            dont_filter=True,
            meta={
                MAIL_META: True,
                # a send that runs out of retries is recorded by its sender (the mailing job's rows, the
                # removal request); a replayable dead letter could send it a second time
                "dead_letter": False,
                "auth": True,  # the token goes to this request only (see AUTH_DOMAINS above)
                "allow_offsite": True,  # the API is not one of the spider's sites
                "dont_redirect": True,  # a redirected POST is not a send; its status is the answer
                "ratelimit_key": self.key,
                "ratelimit_rps": self.rps,
                "download_slot": self.key,
            },
        )

    async def send(self, to: str, subject: str, body: str) -> str:
        engine = getattr(self.crawler, "engine", None)
        if engine is None or engine.spider is None:
            raise RuntimeError("the mail API provider sends through a running crawl; no spider is open")
        try:
            response = await engine.download_async(self.request(to, subject, body))
        except IgnoreRequest as exc:  # e.g. no token after repeated failures (dead letter recorded)
            raise MailUnavailable(f"mail API: send dropped ({type(exc).__name__}: {exc})") from None
        except Exception as exc:
            if answer_lost(exc):
                raise MailOutcomeUnknown(
                    f"mail API: no answer after the send left ({type(exc).__name__}); it may have been accepted"
                ) from None
            raise MailUnavailable(f"mail API unreachable ({type(exc).__name__})") from None
        return self.outcome(response)

    @staticmethod
    def outcome(response) -> str:
        data = {}
        with contextlib.suppress(orjson.JSONDecodeError):
            data = orjson.loads(response.body or b"{}")
        if not isinstance(data, dict):
            data = {}
        if response.status in ACCEPTED:
            return str(data.get("message_id") or "")
        code = data.get("error")
        detail = f" ({code})" if isinstance(code, str) and SAFE_CODE.match(code) else ""
        if response.status in REJECTED:
            raise MailRejected(f"mail API refused the message: {response.status}{detail}")
        if response.status in MAYBE_ACCEPTED:
            raise MailOutcomeUnknown(f"mail API answered {response.status}{detail}; it may have been accepted")
        raise MailUnavailable(f"mail API answered {response.status}{detail} (after retries)")


class MailDeferralWait:
    """First of the downloader middlewares for sends: wait out a deferral (``defer_until``) here,
    since ``download_async`` would otherwise send the deferred copy at once."""

    async def process_request(self, request):
        until = request.meta.get(DEFER_UNTIL)
        if not request.meta.get(MAIL_META) or until is None:
            return None
        request.meta.pop(DEFER_UNTIL, None)
        reason = request.meta.pop(DEFER_REASON, None)
        delay = until - time.time()
        if delay > 0:
            logger.debug("mail API: send waits %.2fs (%s)", delay, reason or "deferred")
            await asyncio.sleep(delay)
        return None


class MailDepartureSpacing:
    """Keeps the pace (``1 / meta["ratelimit_rps"]``) from the previous send's ANSWER to the next
    send's departure, one send in flight per key. The provider stamps a send when it arrives, which
    is before it answers, so a send leaving a full interval after that answer can never arrive early,
    however late the previous one reached the provider (spacing departures alone could not promise
    that on a busy machine: measured, one 429 in about 180 sends at a 1 s pace)."""

    def __init__(self, clock=time.monotonic, stuck_seconds: float = 300.0):
        self.clock = clock
        self.stuck_seconds = stuck_seconds  # a send whose answer never came through here frees the key
        self.last: dict[str, float] = {}  # rate-limit key -> when its last send left or was answered
        self.in_flight: dict[str, asyncio.Event] = {}

    async def process_request(self, request):
        rps = request.meta.get("ratelimit_rps")
        if not request.meta.get(MAIL_META) or not rps:
            return None
        key = request.meta.get("ratelimit_key", "")
        # a loop: another send may have left while this one waited (no await between check and mark)
        while True:
            if (flight := self.in_flight.get(key)) is not None:
                try:
                    await asyncio.wait_for(flight.wait(), self.stuck_seconds)
                except TimeoutError:
                    self.in_flight.pop(key, None)
                continue
            if (wait := self.last.get(key, float("-inf")) + 1 / rps - self.clock()) > 0:
                logger.debug("mail API: send waits %.3fs after the previous one's answer", wait)
                await asyncio.sleep(wait)
                continue
            break
        self.last[key] = self.clock()
        self.in_flight[key] = asyncio.Event()
        request.meta[SPACING_KEY] = key
        return None

    def answered(self, request) -> None:
        key = request.meta.pop(SPACING_KEY, None)
        if key is not None:
            self.last[key] = self.clock()
            if (flight := self.in_flight.pop(key, None)) is not None:
                flight.set()

    def process_response(self, request, response):
        self.answered(request)
        return response

    def process_exception(self, request, exception):
        self.answered(request)
        return None


class MailLostAnswer:
    """Sees a send's exception and answer before retry.py: one that may have reached the provider (a
    lost answer, a 500 or a gateway timeout) is not retried."""

    def process_response(self, request, response):
        if request.meta.get(MAIL_META) and response.status in MAYBE_ACCEPTED:
            request.meta["dont_retry"] = True
            logger.warning("mail API: a send answered %s; it may have been accepted, not retried", response.status)
        return response

    def process_exception(self, request, exception):
        if request.meta.get(MAIL_META) and answer_lost(exception):
            request.meta["dont_retry"] = True
            logger.warning("mail API: a send lost its answer (%s); not retried", type(exception).__name__)
        return None
