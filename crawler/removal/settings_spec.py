"""Settings of removal (crawler/removal/): opt-out flows and their schedule, sending mail, the inbox."""

from __future__ import annotations

from urllib.parse import urlsplit

from crawler.setting import Component, Setting, redact_url


def check_smtp_url(value) -> None:
    if not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError(f"scheme must be smtp:// or smtps://, got {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise ValueError(f"no host in {redact_url(value)!r}")


def check_inbox(value) -> None:
    scheme, _, rest = value.partition(":")
    if scheme == "maildir":
        if not rest:
            raise ValueError("maildir: needs a directory, e.g. maildir:.data/mail")
        return
    if scheme not in ("imap", "imaps"):
        raise ValueError(f"expected maildir:PATH, imap:// or imaps:// URL, got scheme {scheme or 'none'!r}")
    if not urlsplit(value).hostname:
        raise ValueError(f"no host in {redact_url(value)!r}")


def check_address(value) -> None:
    local, at, domain = value.rpartition("@")
    if not at or not local or ("." not in domain and domain != "localhost"):
        raise ValueError("expected an e-mail address such as optout@example.org")


REMOVAL = Component(
    "Removal",
    "crawler/removal/",
    (
        Setting(
            "REMOVAL_EMAIL",
            "str",
            "optout@example.org",
            "the address opt-out forms are given; each request uses its own plus-tag (`optout+<reference>@...`) "
            "so a broker's confirmation e-mail is matched to exactly one request",
            check=check_address,
        ),
        Setting(
            "REMOVAL_MAX_ATTEMPTS",
            "int",
            "3",
            "opt-out requests per listing: a listing found again after removal (reappeared) is requested again "
            "until this many",
            min=1,
            max=100,
        ),
        Setting(
            "REMOVAL_CONFIRM_RESCAN_HOURS",
            "number",
            "72",
            "after a submission (or its e-mail confirmation), the re-scan that verifies the listing is gone",
            min=0,
        ),
        Setting(
            "RESCAN_INTERVAL_HOURS",
            "number",
            "120",
            "maintenance re-scan of every monitored person (one with removal requests): catches reappearances",
            above=0,
        ),
        Setting(
            "REMOVAL_RETRY_BASE_HOURS",
            "number",
            "0.5",
            "wait before retrying a failed step; doubled for each failure after it",
            above=0,
        ),
        Setting("REMOVAL_RETRY_MAX_HOURS", "number", "48", "the cap of that backoff", above=0),
        Setting(
            "REMOVAL_STEP_FAILURES",
            "int",
            "5",
            "failures of one step in a row before the request is `failed` with the reason",
            min=1,
            max=100,
        ),
    ),
)

MAIL = Component(
    "Mail",
    "crawler/removal/mail/",
    (
        Setting(
            "MAIL_PROVIDER",
            "str",
            "api",
            "how mail is sent: `api` (HTTP e-mail API) or `smtp`",
            choices=("api", "smtp"),
        ),
        Setting(
            "MAIL_API_URL",
            "url",
            "http://127.0.0.1:8406",
            "base URL of the e-mail API (`POST /auth/token`, `POST /send-email`); the default is the sandbox's",
        ),
        Setting("MAIL_API_CLIENT_ID", "str", "sandbox-client", "client id for `/auth/token`"),
        Setting("MAIL_API_CLIENT_SECRET", "str", "sandbox-secret", "client secret for `/auth/token`", secret=True),
        Setting(
            "MAIL_API_MIN_INTERVAL_SECONDS",
            "number",
            "10",
            "the provider's published pace: seconds between sends (a `Retry-After` always wins)",
            min=0,
        ),
        Setting(
            "MAIL_FROM",
            "str",
            "Privacy Requests <privacy-requests@example.org>",
            "the From of every e-mail sent",
        ),
        Setting(
            "SMTP_URL",
            "str",
            "",
            "`smtp://user:password@host:port` (STARTTLS when offered) or `smtps://...` for MAIL_PROVIDER=smtp",
            check=check_smtp_url,
            secret=True,
        ),
        Setting(
            "MAIL_INBOX",
            "str",
            "maildir:.data/mail",
            "where confirmation e-mails are read: `maildir:PATH` or `imap://user:password@host:port/INBOX` "
            "(`imaps://` for TLS)",
            check=check_inbox,
            secret=True,
        ),
        Setting(
            "MAIL_INBOX_POLL_SECONDS", "number", "30", "how often a flow waiting for an e-mail looks again", above=0
        ),
        Setting(
            "MAILING_PROGRESS_SECONDS",
            "number",
            "30",
            "the mailing job logs its progress (sent of total, rate, ETA) this often",
            above=0,
        ),
        Setting(
            "MAILING_RESEND_UNKNOWN",
            "bool",
            "false",
            "the mailing job re-sends a message whose outcome is unknown (sent, answer lost) instead of "
            "reporting it for review",
        ),
    ),
)

COMPONENTS = (REMOVAL, MAIL)
