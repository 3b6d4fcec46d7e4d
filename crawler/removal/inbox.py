"""The inbox confirmation e-mails arrive in: a local Maildir or an IMAP mailbox (``MAIL_INBOX``).

Every removal request gives brokers its own plus-tagged address (``optout+<reference>@...``), so
``find(address)`` returning the messages sent to exactly that address is what ties a broker's
confirmation e-mail to one request; ``confirmation_link`` then picks the link to open.

- ``maildir:PATH`` reads the Maildir's ``new/`` and ``cur/`` directly (the format is one file
  per message, renamed into place when complete, so a reader never sees half a message). It
  never moves or flags anything: several requests, and dovecot in the tests, share the directory.
- ``imap://user:password@host:port/MAILBOX`` (``imaps://`` for TLS; port 143/993 by default;
  the mailbox defaults to INBOX) uses the standard library's imaplib in a worker thread, one
  connection per ``find``: the mailbox is opened read-only (EXAMINE) and searched on the server
  (TO / CC / Delivered-To contain the address), then the candidates are fetched with
  ``BODY.PEEK[]`` so nothing is marked seen. IMAP SEARCH matches substrings case-insensitively,
  so the exact comparison is made here on the parsed headers.

Addresses compare exactly in the local part (the tag is the request's token) and
case-insensitively in the domain. Messages come back oldest first. Errors are ``InboxError``
with the inbox's redacted location and the reason; no address, subject or body is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import imaplib
import os
import re
import ssl
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as DEFAULT_POLICY
from email.utils import getaddresses
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from crawler.setting import redact_url

RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To")
URL_IN_TEXT = re.compile(r"https?://[^\s<>\"'()\[\]]+", re.IGNORECASE)
TRAILING_PUNCTUATION = ".,;:!?"
FETCH_CHUNK = 50  # UIDs per FETCH: keeps each command line short


class InboxError(Exception):
    """The inbox cannot be read: ``str(error)`` names the inbox (no password) and the reason."""


def _normalized(address: str) -> tuple[str, str]:
    local, _, domain = address.strip().rpartition("@")
    return local, domain.lower()


def addressed_to(message: EmailMessage, address: str) -> bool:
    """Whether a recipient header (To, Cc, Delivered-To, X-Original-To) names exactly ``address``."""
    wanted = _normalized(address)
    headers = [str(value) for name in RECIPIENT_HEADERS for value in message.get_all(name, [])]
    return any(_normalized(found) == wanted for _name, found in getaddresses(headers) if found)


class _Links(HTMLParser):
    """The ``href`` of every ``<a>`` in an HTML part, in document order (entities already decoded)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.links.extend(value.strip() for name, value in attrs if name == "href" and value)


def links_in(message: EmailMessage) -> list[str]:
    """Every http(s) link of the message's text and HTML parts, in order."""
    links: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text" or part.get_filename():
            continue
        try:
            text = part.get_content()
        except (LookupError, UnicodeError):  # an unknown or wrong charset: read what can be read
            text = (part.get_payload(decode=True) or b"").decode("utf-8", "replace")
        if part.get_content_subtype() == "html":
            parser = _Links()
            parser.feed(text)
            links += [link for link in parser.links if link.lower().startswith(("http://", "https://"))]
        links += [match.group(0).rstrip(TRAILING_PUNCTUATION) for match in URL_IN_TEXT.finditer(text)]
    return links


def confirmation_link(message: EmailMessage, sender_part: str, link_part: str) -> str | None:
    """The first link containing ``link_part`` in a message whose From contains ``sender_part``
    (case-insensitive; the display name or the address), or None."""
    if sender_part.lower() not in str(message.get("From", "")).lower():
        return None
    return next((link for link in links_in(message) if link_part in link), None)


def parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=DEFAULT_POLICY)


class MaildirInbox:
    """``maildir:PATH``: the messages in ``PATH/new`` and ``PATH/cur``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.where = f"maildir:{self.path}"

    confirmation_link = staticmethod(confirmation_link)

    async def find(self, address: str) -> list[EmailMessage]:
        return await asyncio.to_thread(self._find, address)

    def _files(self) -> list[Path]:
        found = []
        for sub in ("new", "cur"):
            try:
                entries = list(os.scandir(self.path / sub))
            except FileNotFoundError:  # nothing delivered yet
                continue
            except OSError as error:
                raise InboxError(f"{self.where}: cannot read {sub}/ ({error.strerror})") from None
            for entry in entries:
                if entry.name.startswith(".") or not entry.is_file():
                    continue
                try:
                    found.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
                except FileNotFoundError:  # moved new/ -> cur/ meanwhile: seen on the next look
                    continue
        return [path for _mtime, _name, path in sorted(found)]

    def _find(self, address: str) -> list[EmailMessage]:
        messages = []
        for path in self._files():
            try:
                with path.open("rb") as file:
                    headers = BytesParser(policy=DEFAULT_POLICY).parse(file, headersonly=True)
                    if not addressed_to(headers, address):
                        continue
                    file.seek(0)
                    messages.append(parse(file.read()))
            except FileNotFoundError:  # moved (new/ -> cur/) while reading: seen on the next look
                continue
        return messages


def _quoted(text: str) -> str:
    """An IMAP quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapInbox:
    """``imap://user:password@host:port/MAILBOX`` or ``imaps://...``."""

    def __init__(self, url: str, *, timeout: float = 30.0, ssl_context=None):
        parts = urlsplit(url)
        if parts.scheme not in ("imap", "imaps") or not parts.hostname:
            raise ValueError(f"MAIL_INBOX: expected imap://user:password@host:port/MAILBOX, got {redact_url(url)!r}")
        self.where = redact_url(url)
        self.tls = parts.scheme == "imaps"
        self.host = parts.hostname
        self.port = parts.port or (993 if self.tls else 143)
        self.user = unquote(parts.username or "")
        self.password = unquote(parts.password or "")
        self.mailbox = unquote(parts.path.strip("/")) or "INBOX"
        self.timeout = timeout
        # imaplib's own default checks no certificate at all: verify against the system's CAs
        # (tests pass a context trusting their own certificate)
        self.ssl_context = ssl_context

    confirmation_link = staticmethod(confirmation_link)

    async def find(self, address: str) -> list[EmailMessage]:
        return await asyncio.to_thread(self._find, address)

    def _connect(self) -> imaplib.IMAP4:
        try:
            if self.tls:
                context = self.ssl_context or ssl.create_default_context()
                return imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=self.timeout)
            return imaplib.IMAP4(self.host, self.port, timeout=self.timeout)
        except (OSError, imaplib.IMAP4.error) as error:
            raise InboxError(f"{self.where}: cannot connect ({type(error).__name__})") from None

    def _find(self, address: str) -> list[EmailMessage]:
        conn = self._connect()
        try:
            return self._search(conn, address)
        except imaplib.IMAP4.error as error:
            raise InboxError(f"{self.where}: {_short(error)}") from None
        except OSError as error:
            raise InboxError(f"{self.where}: connection lost ({type(error).__name__})") from None
        finally:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                conn.logout()

    def _search(self, conn: imaplib.IMAP4, address: str) -> list[EmailMessage]:
        try:
            conn.login(self.user, self.password)
        except imaplib.IMAP4.error:
            raise InboxError(f"{self.where}: login refused") from None
        status, _ = conn.select(_quoted(self.mailbox), readonly=True)
        if status != "OK":
            raise InboxError(f"{self.where}: cannot open the mailbox")
        if address.isascii():
            wanted = _quoted(address)
            criteria = ("OR", "TO", wanted, "OR", "CC", wanted, "HEADER", "Delivered-To", wanted)
        else:  # imaplib sends ASCII only: look at every message and compare here
            criteria = ("ALL",)
        status, data = conn.uid("SEARCH", *criteria)
        if status != "OK":
            raise InboxError(f"{self.where}: search failed")
        uids = sorted({int(uid) for uid in b" ".join(item for item in data if item).split()})
        messages = []
        for start in range(0, len(uids), FETCH_CHUNK):
            chunk = ",".join(str(uid) for uid in uids[start : start + FETCH_CHUNK])
            status, data = conn.uid("FETCH", chunk, "(BODY.PEEK[])")
            if status != "OK":
                raise InboxError(f"{self.where}: fetch failed")
            for item in data:
                if isinstance(item, tuple) and len(item) == 2:
                    message = parse(item[1])
                    if addressed_to(message, address):
                        messages.append(message)
        return messages


def _short(error: Exception) -> str:
    """An IMAP error's first line, without anything the server echoed (it may quote our search)."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text.split('"', 1)[0].strip()[:120] or type(error).__name__


def inbox_from_settings(settings, **options) -> MaildirInbox | ImapInbox:
    """The inbox ``MAIL_INBOX`` names (``maildir:PATH``, ``imap://...`` or ``imaps://...``)."""
    value = settings.get("MAIL_INBOX") or "maildir:.data/mail"
    scheme, _, rest = value.partition(":")
    if scheme == "maildir":
        if not rest:
            raise ValueError("MAIL_INBOX: maildir: needs a directory, e.g. maildir:.data/mail")
        return MaildirInbox(rest)
    return ImapInbox(value, **options)
