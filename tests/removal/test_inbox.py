"""The Maildir inbox and link extraction (crawler/removal/inbox.py): messages the sandbox's mailroom
delivers are found by their exact plus-tagged address (domain case-insensitive, the tag exact),
oldest first; the confirmation link is picked from text or HTML parts of the right sender."""

from __future__ import annotations

import os
import uuid
from email.message import EmailMessage

import pytest
from scrapy.settings import Settings

from crawler.removal.inbox import (
    ImapInbox,
    MaildirInbox,
    addressed_to,
    confirmation_link,
    inbox_from_settings,
    links_in,
)
from sandbox import mailroom

pytestmark = pytest.mark.unit

BROKER = "FastPeople Privacy <privacy@fastpeople.test>"


@pytest.fixture
def maildir(tmp_path):
    path = tmp_path / "mail"
    previous = mailroom.maildir_path()
    mailroom.configure({"maildir": str(path)})
    yield path
    mailroom.configure({"maildir": str(previous)})  # as it was, for the rest of the process


def tagged() -> str:
    return f"optout+{uuid.uuid4().hex[:12]}@example.org"


def confirmation(to: str, token: str = "t0k3n") -> EmailMessage:
    return mailroom.compose(
        BROKER,
        to,
        "Confirm your removal request",
        f"Open https://fastpeople.test/removal/confirm/{token}. Or visit https://fastpeople.test/help",
    )


def html_message(to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = BROKER, to, "Confirm"
    message.set_content("Your mail program shows no HTML.")
    message.add_alternative(
        '<p><a href="https://fastpeople.test/help">help</a> '
        '<a href="https://fastpeople.test/removal/confirm/abc?x=1&amp;y=2">Confirm</a></p>',
        subtype="html",
    )
    return message


async def test_finds_exactly_the_tagged_address(maildir):
    mine, other = tagged(), tagged()
    mailroom.deliver(confirmation(mine, "mine"))
    mailroom.deliver(confirmation(other, "other"))
    mailroom.deliver(confirmation("optout@example.org", "untagged"))
    inbox = MaildirInbox(maildir)

    local, _, domain = mine.partition("@")
    found = await inbox.find(f"{local}@{domain.upper()}")  # the domain compares case-insensitively
    assert [confirmation_link(m, "fastpeople", "/removal/confirm/") for m in found] == [
        "https://fastpeople.test/removal/confirm/mine"
    ]
    assert await inbox.find(f"{local.upper()}@{domain}") == []  # the tag is the request's token: exact
    assert await inbox.find(tagged()) == []
    assert len(await inbox.find("optout@example.org")) == 1


async def test_oldest_first_and_delivered_to(maildir):
    address = tagged()
    mailroom.deliver(confirmation(address, "first"))
    forwarded = confirmation("list@example.org", "second")
    forwarded["Delivered-To"] = address
    mailroom.deliver(forwarded)
    files = sorted((maildir / "new").iterdir(), key=lambda p: "second" in p.read_text())
    for n, path in enumerate(files):  # explicit delivery times: equal mtimes would leave the order to chance
        os.utime(path, (1_700_000_000 + n, 1_700_000_000 + n))
    found = await MaildirInbox(maildir).find(address)
    links = [confirmation_link(m, "fastpeople", "/confirm/") for m in found]
    assert links == ["https://fastpeople.test/removal/confirm/first", "https://fastpeople.test/removal/confirm/second"]


async def test_reads_cur_and_ignores_what_is_not_a_message(maildir):
    address = tagged()
    mailroom.deliver(confirmation(address))
    (path,) = (maildir / "new").iterdir()
    path.rename(maildir / "cur" / (path.name + ":2,S"))  # a mail program read it
    (maildir / "cur" / ".hidden").write_text("not a message")
    (maildir / "dovecot-uidlist").write_text("3 V1 N2\n")
    assert len(await MaildirInbox(maildir).find(address)) == 1


async def test_missing_maildir_is_empty(tmp_path):
    assert await MaildirInbox(tmp_path / "nothing-yet").find(tagged()) == []


def test_link_from_html_part_with_entities():
    message = html_message(tagged())
    assert confirmation_link(message, "fastpeople", "/removal/confirm/") == (
        "https://fastpeople.test/removal/confirm/abc?x=1&y=2"
    )
    assert links_in(message)[0] == "https://fastpeople.test/help"


def test_link_needs_the_sender_and_the_path():
    message = confirmation(tagged())
    assert confirmation_link(message, "FASTPEOPLE", "/removal/confirm/") is not None  # sender: case-insensitive
    assert confirmation_link(message, "radaris", "/removal/confirm/") is None
    assert confirmation_link(message, "fastpeople", "/unsubscribe/") is None
    # the sentence's full stop is not part of the link
    assert confirmation_link(message, "fastpeople", "/confirm/") == "https://fastpeople.test/removal/confirm/t0k3n"


def test_addressed_to_reads_cc_and_display_names():
    address = tagged()
    message = mailroom.compose(BROKER, "Someone <someone@example.org>", "s", "b")
    message["Cc"] = f'"Opt Out" <{address}>'
    assert addressed_to(message, address)
    assert not addressed_to(message, address.replace("+", "+x"))


def test_inbox_from_settings(tmp_path):
    inbox = inbox_from_settings(Settings({"MAIL_INBOX": f"maildir:{tmp_path}"}))
    assert isinstance(inbox, MaildirInbox) and inbox.path == tmp_path
    imap = inbox_from_settings(Settings({"MAIL_INBOX": "imaps://me%40x.org:p%2Fw@mail.example.org/Confirmations"}))
    assert isinstance(imap, ImapInbox)
    assert (imap.host, imap.port, imap.tls, imap.user, imap.password, imap.mailbox) == (
        "mail.example.org",
        993,
        True,
        "me@x.org",
        "p/w",
        "Confirmations",
    )
    assert "p%2Fw" not in imap.where
    assert inbox_from_settings(Settings({"MAIL_INBOX": "imap://u:p@h"})).mailbox == "INBOX"
    with pytest.raises(ValueError, match="MAIL_INBOX"):
        inbox_from_settings(Settings({"MAIL_INBOX": "maildir:"}))
