"""The IMAP inbox (crawler/removal/inbox.py) against a real dovecot serving a Maildir (tests/removal/dovecot.py):
the sandbox's mailroom delivers into dovecot's Maildir, the inbox finds the messages over IMAP by their
exact tagged address, a message arriving after the first look is found by a later one, nothing is marked
read, imaps:// checks the server's certificate, and a wrong password or a stopped server is one clear
InboxError without the password."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid

import pytest
from dovecot import running_dovecot
from scrapy.settings import Settings

from crawler.removal.inbox import ImapInbox, InboxError, confirmation_link, inbox_from_settings
from sandbox import mailroom

pytestmark = pytest.mark.integration

BROKER = "FastPeople Privacy <privacy@fastpeople.test>"


@pytest.fixture(scope="module")
def dovecot():
    with running_dovecot() as server:
        yield server


@pytest.fixture
def delivered_to(dovecot):
    """The mailroom writes into dovecot's Maildir for this test."""
    previous = mailroom.maildir_path()
    mailroom.configure({"maildir": str(dovecot.maildir)})
    yield dovecot
    mailroom.configure({"maildir": str(previous)})


def tagged() -> str:
    return f"optout+{uuid.uuid4().hex[:12]}@example.org"


def deliver(to: str, token: str) -> None:
    mailroom.deliver(
        mailroom.compose(
            BROKER, to, "Confirm your removal", f"Please confirm: https://fastpeople.test/removal/confirm/{token}\n"
        )
    )


async def found_within(inbox, address: str, count: int, seconds: float = 10) -> list:
    deadline = time.monotonic() + seconds
    while True:
        messages = await inbox.find(address)
        if len(messages) >= count or time.monotonic() > deadline:
            return messages
        await asyncio.sleep(0.05)


async def test_finds_the_tagged_address_over_imap(delivered_to, caplog):
    caplog.set_level(logging.DEBUG)
    mine, other = tagged(), tagged()
    deliver(mine, "mine")
    deliver(other, "other")
    inbox = inbox_from_settings(Settings({"MAIL_INBOX": delivered_to.url}))
    assert isinstance(inbox, ImapInbox)

    local, _, domain = mine.partition("@")
    found = await inbox.find(f"{local}@{domain.upper()}")
    assert [inbox.confirmation_link(m, "fastpeople", "/removal/confirm/") for m in found] == [
        "https://fastpeople.test/removal/confirm/mine"
    ]
    assert await inbox.find(f"{local.upper()}@{domain}") == []  # IMAP SEARCH is case-insensitive; the tag is not
    assert await inbox.find(tagged()) == []
    # read-only: nothing was moved out of new/ or flagged
    assert len(list((delivered_to.maildir / "new").iterdir())) >= 2
    assert mine not in caplog.text and delivered_to.password not in caplog.text


async def test_a_message_arriving_after_the_first_look(delivered_to):
    address = tagged()
    inbox = ImapInbox(delivered_to.url)
    assert await inbox.find(address) == []
    deliver(address, "late")
    messages = await found_within(inbox, address, 1)
    assert [confirmation_link(m, "fastpeople", "/confirm/") for m in messages] == [
        "https://fastpeople.test/removal/confirm/late"
    ]
    deliver(address, "again")  # a second confirmation (a resubmission): oldest first
    messages = await found_within(inbox, address, 2)
    assert [confirmation_link(m, "fastpeople", "/confirm/") for m in messages] == [
        "https://fastpeople.test/removal/confirm/late",
        "https://fastpeople.test/removal/confirm/again",
    ]


async def test_a_non_ascii_address_is_compared_locally(delivered_to):
    address = f"optout+{uuid.uuid4().hex[:8]}@exämple.org"
    deliver(address, "idn")
    deliver(tagged(), "ascii")
    messages = await found_within(ImapInbox(delivered_to.url), address, 1)
    assert [confirmation_link(m, "fastpeople", "/confirm/") for m in messages] == [
        "https://fastpeople.test/removal/confirm/idn"
    ]


async def test_unknown_mailbox(dovecot):
    with pytest.raises(InboxError, match="cannot open the mailbox"):
        await ImapInbox(dovecot.url.replace("/INBOX", "/Nowhere")).find(tagged())


async def test_imaps():
    with running_dovecot(tls=True) as server:
        previous = mailroom.maildir_path()
        mailroom.configure({"maildir": str(server.maildir)})
        try:
            address = tagged()
            deliver(address, "tls")
            trusted = ssl.create_default_context(cafile=str(server.certificate))
            inbox = inbox_from_settings(Settings({"MAIL_INBOX": server.imaps_url}), ssl_context=trusted)
            assert inbox.tls and inbox.port == server.imaps_port
            messages = await found_within(inbox, address, 1)
            assert [confirmation_link(m, "fastpeople", "/confirm/") for m in messages] == [
                "https://fastpeople.test/removal/confirm/tls"
            ]
            # a certificate the system does not trust: refused, and the error says so in one line
            with pytest.raises(
                InboxError, match=r"imaps://optout:\*\*\*@.*: cannot connect \(SSLCertVerificationError\)"
            ):
                await ImapInbox(server.imaps_url).find(address)
        finally:
            mailroom.configure({"maildir": str(previous)})


async def test_wrong_password_and_server_down_are_one_clear_error():
    # a dovecot of its own: after a failed login, dovecot slows that address down for a while
    with running_dovecot() as server:
        where = f"imap://{server.user}:***@127.0.0.1:{server.port}/INBOX"
        with pytest.raises(InboxError) as raised:
            await ImapInbox(server.url.replace(server.password, "not-the-password")).find(tagged())
        assert str(raised.value) == f"{where}: login refused"
    with pytest.raises(InboxError) as raised:
        await ImapInbox(server.url, timeout=5).find(tagged())
    assert str(raised.value) == f"{where}: cannot connect (ConnectionRefusedError)"
