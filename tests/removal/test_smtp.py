"""The SMTP provider (crawler/removal/mail/smtp.py) against a real SMTP server (aiosmtpd) on a free port:
a sent message arrives with MAIL_FROM, To, Subject and body after logging in (over STARTTLS when the
server offers it, or smtps://); a refused recipient is MailRejected at once; 4xx answers are retried
and then MailUnavailable, as is a server that is down or a wrong password; a connection lost after the
message went out is MailOutcomeUnknown. Nothing personal or secret in logs or errors."""

from __future__ import annotations

import email
import logging
import socket
import ssl
from email.policy import default as DEFAULT_POLICY

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from dovecot import self_signed_certificate
from scrapy.settings import Settings

from crawler.removal.mail import MailOutcomeUnknown, MailRejected, MailUnavailable, provider_from_crawler
from crawler.removal.mail.smtp import SmtpProvider

pytestmark = [
    pytest.mark.integration,
    # the test server takes a login over plain text on the loopback (test_starttls_when_offered covers TLS)
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

USER, PASSWORD = "mailer", "smtp-test-secret"
MAIL_FROM = "Privacy Requests <privacy-requests@example.org>"
SUBJECT, BODY = "Deletion request R-123", "Please delete the record https://thatsthem.test/p/1.\nThank you."


class Server:
    """What the SMTP server received, and how it should misbehave."""

    def __init__(self):
        self.messages: list[tuple[str, list[str], email.message.EmailMessage, bool]] = []
        self.rcpt_calls = 0
        self.busy = 0  # answer 451 to this many RCPTs
        self.hang_up = False  # drop the connection instead of answering the message
        self.refuse_sender = False  # answer 550 to MAIL FROM (the account may not send as MAIL_FROM)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.refuse_sender:
            return "550 5.7.1 Sender address rejected"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.rcpt_calls += 1
        if address.startswith("nobody"):
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        if self.busy:
            self.busy -= 1
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.hang_up:
            server.transport.abort()
            return "250 OK"
        message = email.message_from_bytes(envelope.content, policy=DEFAULT_POLICY)
        tls = server.transport.get_extra_info("ssl_object") is not None
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message, tls))
        return "250 Message accepted"


def authenticate(server, session, envelope, mechanism, auth_data):
    valid = (auth_data.login, auth_data.password) == (USER.encode(), PASSWORD.encode())
    return AuthResult(success=valid, handled=False)  # handled=False: aiosmtpd answers 535 itself


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1: (server context, client context trusting it)."""
    cert_file, key_file = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    return server, ssl.create_default_context(cafile=str(cert_file))


def running(recorder: Server, **options) -> Controller:
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticate,
        auth_required=True,
        **options,
    )
    controller.start()
    return controller


@pytest.fixture
def server():
    """A plain SMTP server (no TLS offered) that requires a login."""
    recorder = Server()
    controller = running(recorder, auth_require_tls=False)
    recorder.port = controller.port
    yield recorder
    controller.stop()


def provider(url: str, **options) -> SmtpProvider:
    options.setdefault("retry_seconds", 0.01)
    options.setdefault("timeout", 5)
    return SmtpProvider(Settings({"SMTP_URL": url, "MAIL_FROM": MAIL_FROM}), **options)


def plain_url(port: int, password: str = PASSWORD) -> str:
    return f"smtp://{USER}:{password}@127.0.0.1:{port}"


async def test_sent_message_arrives(server, caplog):
    caplog.set_level(logging.DEBUG)
    to = "optout+r123@example.org"
    message_id = await provider(plain_url(server.port)).send(to, SUBJECT, BODY)
    ((mail_from, rcpt_tos, message, tls),) = server.messages
    assert (mail_from, rcpt_tos, tls) == ("privacy-requests@example.org", [to], False)
    assert (message["From"], message["To"], message["Subject"]) == (MAIL_FROM, to, SUBJECT)
    assert message.get_content().replace("\r\n", "\n").strip() == BODY
    assert message["Message-ID"] == message_id and message_id.endswith("@example.org>")
    client_log = "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")  # not aiosmtpd's
    assert "accepted message" in client_log
    for secret in (to, SUBJECT, "thatsthem", PASSWORD):
        assert secret not in client_log


async def test_provider_from_crawler_picks_smtp(server):
    class Crawler:
        settings = Settings({"MAIL_PROVIDER": "smtp", "SMTP_URL": plain_url(server.port), "MAIL_FROM": MAIL_FROM})

    mail = provider_from_crawler(Crawler())
    assert isinstance(mail, SmtpProvider)
    await mail.send("optout+x@example.org", SUBJECT, BODY)
    assert len(server.messages) == 1


async def test_refused_recipient_is_rejected_at_once(server):
    with pytest.raises(MailRejected) as raised:
        await provider(plain_url(server.port)).send("nobody+r1@example.org", SUBJECT, BODY)
    assert str(raised.value) == f"smtp://{USER}:***@127.0.0.1:{server.port}: RCPT answered 550 5.1.1"
    assert server.rcpt_calls == 1 and server.messages == []


async def test_a_refused_sender_is_unavailable_not_a_rejected_message(server):
    # no message is at fault: marking it undeliverable would lose it (a mailing row, an opt-out letter)
    server.refuse_sender = True
    with pytest.raises(MailUnavailable, match=r"MAIL answered 550 5\.7\.1"):
        await provider(plain_url(server.port)).send("optout+r9@example.org", SUBJECT, BODY)
    assert server.rcpt_calls == 0 and server.messages == []


async def test_try_later_is_retried_then_unavailable(server):
    server.busy = 1
    await provider(plain_url(server.port)).send("optout+r2@example.org", SUBJECT, BODY)
    assert server.rcpt_calls == 2 and len(server.messages) == 1

    server.busy = 100
    with pytest.raises(MailUnavailable, match=r"RCPT answered 451 4\.3\.0 \(3 attempts\)"):
        await provider(plain_url(server.port), attempts=3).send("optout+r3@example.org", SUBJECT, BODY)
    assert server.rcpt_calls == 2 + 3 and len(server.messages) == 1


async def test_wrong_password_is_unavailable(server):
    with pytest.raises(MailUnavailable, match=r"login answered 535") as raised:
        await provider(plain_url(server.port, "wrong-password"), attempts=1).send("optout@example.org", SUBJECT, BODY)
    assert "wrong-password" not in str(raised.value)
    assert server.messages == []


async def test_server_down_is_unavailable():
    port = free_port()  # nothing listens there
    with pytest.raises(MailUnavailable) as raised:
        await provider(plain_url(port), attempts=2).send("optout@example.org", SUBJECT, BODY)
    assert str(raised.value) == (f"smtp://{USER}:***@127.0.0.1:{port}: cannot connect (SMTPConnectError) (2 attempts)")


async def test_connection_lost_after_the_message_is_unknown(server):
    server.hang_up = True
    with pytest.raises(MailOutcomeUnknown, match="connection lost while sending the message"):
        await provider(plain_url(server.port)).send("optout+r4@example.org", SUBJECT, BODY)
    assert server.rcpt_calls == 1  # never sent again


async def test_starttls_when_offered(certificate):
    server_context, client_context = certificate
    recorder = Server()
    controller = running(recorder, tls_context=server_context, require_starttls=True)  # login only after TLS
    try:
        url = plain_url(controller.port)
        await provider(url, tls_context=client_context).send("optout+tls@example.org", SUBJECT, BODY)
        assert [tls for *_, tls in recorder.messages] == [True]
        # a certificate the client does not trust: nothing is sent, and it is not a rejection
        with pytest.raises(MailUnavailable, match="cannot connect"):
            await provider(url, attempts=1).send("optout+tls@example.org", SUBJECT, BODY)
    finally:
        controller.stop()


async def test_smtps(certificate):
    server_context, client_context = certificate
    recorder = Server()
    controller = running(recorder, ssl_context=server_context, auth_require_tls=False)
    try:
        url = f"smtps://{USER}:{PASSWORD}@127.0.0.1:{controller.port}"
        await provider(url, tls_context=client_context).send("optout+ssl@example.org", SUBJECT, BODY)
        assert [tls for *_, tls in recorder.messages] == [True]
    finally:
        controller.stop()


def test_settings_errors():
    with pytest.raises(ValueError, match="SMTP_URL"):
        SmtpProvider(Settings({"SMTP_URL": "", "MAIL_FROM": MAIL_FROM}))
    with pytest.raises(ValueError, match="MAIL_FROM"):
        SmtpProvider(Settings({"SMTP_URL": "smtp://127.0.0.1", "MAIL_FROM": "nobody"}))
    plain = SmtpProvider(Settings({"SMTP_URL": "smtp://h.example", "MAIL_FROM": MAIL_FROM}))
    assert (plain.port, plain.use_tls, plain.username) == (25, False, None)
    tls = SmtpProvider(Settings({"SMTP_URL": "smtps://a%40b.org:p%2Fw@h.example", "MAIL_FROM": MAIL_FROM}))
    assert (tls.port, tls.use_tls, tls.username, tls.password) == (465, True, "a@b.org", "p/w")
    assert "p%2Fw" not in tls.where
