"""Where the sandbox's e-mail goes: to a simulated broker's privacy inbox, or into the user's mailbox.

Every simulated service that sends mail (the e-mail API in ``sandbox/mail.py``, the brokers'
confirmation e-mails) hands the message to ``deliver``. A recipient address that a broker
registered (``register_recipient``: its privacy address, which takes deletion requests) goes to that
broker's handler, in process; any other address is the user's, and the message is written into the
Maildir the sandbox was started with (``--maildir``, default ``.data/mail``): the directory the
crawler's inbox reads (``MAIL_INBOX=maildir:...``) or that dovecot serves over IMAP in the tests.
"""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import getaddresses, make_msgid
from pathlib import Path

DEFAULT_MAILDIR = Path(".data/mail")

Handler = Callable[[EmailMessage], None]
RECIPIENTS: dict[str, Handler] = {}  # lower-cased address -> the broker's handler
_maildir: list[Path] = [DEFAULT_MAILDIR]


def configure(options: dict) -> None:
    """Use the Maildir of the sandbox's options (``maildir``), once per process."""
    _maildir[0] = Path(options.get("maildir") or DEFAULT_MAILDIR)


def register_recipient(address: str, handler: Handler) -> None:
    RECIPIENTS[address.lower()] = handler


def maildir_path() -> Path:
    return _maildir[0]


def recipients(message: EmailMessage) -> list[str]:
    return [address for _name, address in getaddresses(message.get_all("To", []) + message.get_all("Cc", []))]


def deliver(message: EmailMessage) -> str:
    """Hand the message to each recipient; returns its Message-ID (set here when missing)."""
    if "Message-ID" not in message:
        message["Message-ID"] = make_msgid(domain="sandbox.test")
    to_mailbox = False
    for address in recipients(message):
        handler = RECIPIENTS.get(address.lower())
        if handler is not None:
            handler(message)
        else:
            to_mailbox = True
    if to_mailbox:
        # Maildir writes to tmp/ then renames into new/: a reader never sees half a message. Its
        # create=True makes the folders only when the directory itself is missing, not in an empty one
        for folder in ("tmp", "new", "cur"):
            (maildir_path() / folder).mkdir(parents=True, exist_ok=True)
        mailbox.Maildir(maildir_path(), create=False).add(message)
    return message["Message-ID"]


def compose(sender: str, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(body)
    return message
