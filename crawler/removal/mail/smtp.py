"""The SMTP mail provider: one message per ``send`` through ``SMTP_URL`` with aiosmtplib.

``smtp://user:password@host:port`` upgrades with STARTTLS when the server offers it (and logs in
after that, so a password never crosses the wire in clear text when TLS is available);
``smtps://`` speaks TLS from the first byte (port 465 by default). Each ``send`` opens its own
connection: a confirmation e-mail or a mailing row is rare enough that pooling would only add
state to get wrong after a failure.

What the caller needs from a failure is whether sending again is safe, so every error becomes
one of the three classes of ``crawler.removal.mail``:

- ``MailRejected``: a permanent (5xx) answer to RCPT TO or to the message: sending the same
  message again would get the same answer.
- ``MailUnavailable``: the server could not be reached, answered 4xx (try later) on every one
  of ``attempts`` tries, or refuses us rather than the message (a 5xx greeting or answer to
  MAIL FROM, a failed login). Nothing was accepted, so the caller may send again later.
- ``MailOutcomeUnknown``: the connection was lost (or timed out) once the message itself was on
  its way (the DATA phase): the server may have queued it. Never retried here: the caller
  decides (the mailing job reports it for review).

Reasons name the phase and the server's status codes, never the server's free text (which
usually quotes the recipient's address), the address, the subject or the body.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid, parseaddr
from urllib.parse import unquote, urlsplit

import aiosmtplib

from crawler.removal.mail.errors import MailOutcomeUnknown, MailRejected, MailUnavailable
from crawler.setting import redact_url

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
ENHANCED_STATUS = re.compile(r"^\d\.\d{1,3}\.\d{1,3}\b")


class _Transient(Exception):
    """A failure worth another try (4xx, connection refused before anything was sent)."""


def _reason(phase: str, error: aiosmtplib.SMTPResponseException) -> str:
    """``RCPT answered 550 5.1.1``: the code and the enhanced status, not the text (it quotes addresses)."""
    enhanced = ENHANCED_STATUS.match(error.message or "")
    return f"{phase} answered {error.code}" + (f" {enhanced.group(0)}" if enhanced else "")


class SmtpProvider:
    """``MailProvider`` over SMTP: ``await send(to, subject, body)`` -> the Message-ID it set."""

    def __init__(
        self,
        settings,
        *,
        attempts: int = 3,
        retry_seconds: float = 2.0,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ):
        url = settings.get("SMTP_URL") or ""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(
                f"SMTP_URL: expected smtp://user:password@host:port or smtps://..., got {redact_url(url)!r}"
            )
        self.where = redact_url(url)
        self.hostname = parts.hostname
        self.port = parts.port or DEFAULT_PORTS[parts.scheme]
        self.use_tls = parts.scheme == "smtps"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = settings.get("MAIL_FROM")
        self.envelope_from = parseaddr(self.sender)[1]
        if "@" not in self.envelope_from:
            raise ValueError("MAIL_FROM: expected an address such as 'Name <sender@example.org>'")
        self.attempts = max(1, attempts)
        self.retry_seconds = retry_seconds
        self.timeout = timeout
        self.tls_context = tls_context  # tests trust their own certificate; None = the system's CAs

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings)

    def compose(self, to: str, subject: str, body: str) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain=self.envelope_from.rpartition("@")[2] or None)
        message.set_content(body)
        return message

    async def send(self, to: str, subject: str, body: str) -> str:
        message = self.compose(to, subject, body)
        data = message.as_bytes(policy=SMTP_POLICY)
        for attempt in range(1, self.attempts + 1):
            try:
                await self._deliver(to, data)
            except _Transient as error:
                if attempt == self.attempts:
                    raise MailUnavailable(f"{self.where}: {error} ({attempt} attempts)") from None
                logger.info("SMTP %s: %s; trying again (attempt %d of %d)", self.where, error, attempt, self.attempts)
                await asyncio.sleep(self.retry_seconds * 2 ** (attempt - 1))
            else:
                logger.debug("SMTP %s accepted message %s", self.where, message["Message-ID"])
                return message["Message-ID"]
        raise AssertionError("unreachable")  # pragma: no cover

    def _client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.hostname,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=None if not self.use_tls else False,  # None: STARTTLS when the server offers it
            timeout=self.timeout,
            tls_context=self.tls_context,
        )

    async def _deliver(self, to: str, data: bytes) -> None:
        """One try. Raises _Transient, MailRejected or MailOutcomeUnknown."""
        smtp = self._client()
        try:
            await self._connect(smtp)
            await self._envelope(smtp, to)
            try:
                await smtp.data(data)
            except aiosmtplib.SMTPResponseException as error:
                self._answered("DATA", error)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as error:
                # the message was on its way: the server may have queued it
                raise MailOutcomeUnknown(
                    f"{self.where}: connection lost while sending the message ({type(error).__name__})"
                ) from None
        finally:
            if smtp.is_connected:
                try:
                    await smtp.quit()
                except (aiosmtplib.SMTPException, OSError):
                    smtp.close()

    async def _connect(self, smtp: aiosmtplib.SMTP) -> None:
        try:
            await smtp.connect()
        except aiosmtplib.SMTPAuthenticationError as error:
            # the account, not this message: nothing was sent, and the operator must fix SMTP_URL
            raise _Transient(_reason("login", error)) from None
        except aiosmtplib.SMTPResponseException as error:
            self._answered("connect", error)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as error:
            raise _Transient(f"cannot connect ({type(error).__name__})") from None

    async def _envelope(self, smtp: aiosmtplib.SMTP, to: str) -> None:
        for phase, command in (("MAIL", lambda: smtp.mail(self.envelope_from)), ("RCPT", lambda: smtp.rcpt(to))):
            try:
                await command()
            except aiosmtplib.SMTPResponseException as error:
                self._answered(phase, error)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as error:
                # before DATA nothing can have been queued
                raise _Transient(f"connection lost at {phase} ({type(error).__name__})") from None

    def _answered(self, phase: str, error: aiosmtplib.SMTPResponseException) -> None:
        if error.code >= 500 and phase in ("RCPT", "DATA"):  # this recipient, this message: final
            raise MailRejected(f"{self.where}: {_reason(phase, error)}")
        if error.code >= 500:
            # the server refuses us (a 554 greeting, a 530 or 550 on the sender): no message is at fault,
            # so none may be marked undeliverable; sending later, once SMTP_URL or MAIL_FROM is fixed, is safe
            raise MailUnavailable(f"{self.where}: {_reason(phase, error)}")
        if phase == "DATA" and not 400 <= error.code < 500:
            # not an SMTP answer at all (garbled) after the message went out: it may have been queued
            raise MailOutcomeUnknown(f"{self.where}: {_reason(phase, error)}")
        raise _Transient(_reason(phase, error))
