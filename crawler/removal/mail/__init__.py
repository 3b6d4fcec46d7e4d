"""Sending e-mail: one interface, two providers (an HTTP e-mail API, SMTP).

Whoever sends mail (the opt-out flows' ``send_email`` step, the CSV mailing job) holds a
``MailProvider`` from ``provider_from_crawler(crawler)`` and awaits ``send(to, subject, body)``,
which returns the provider's message id. What a caller must decide after a failure is whether
sending again is safe, so every failure is one of three exceptions:

- ``MailRejected``: permanent (an invalid address, a refused message): the same send would fail
  again; never retried.
- ``MailUnavailable``: nothing was accepted (the provider kept failing, retries ran out, no
  token): sending again later is safe.
- ``MailOutcomeUnknown``: the request may have reached the provider and its answer was lost
  (connection closed or timed out after it was sent): the mail may have gone out. Re-sending
  risks a duplicate; the caller decides (the mailing job reports it for review).

Reasons are one line naming the provider's status or the error class, never an address, a
subject, a body or a token.

``MAIL_PROVIDER`` picks the provider: ``api`` (crawler/removal/mail/api.py, a Scrapy request
through the crawler's engine, so the auth-token, rate-limit and retry middlewares apply; the
spider merges ``mail_spider_settings(settings)`` into its settings) or ``smtp``
(crawler/removal/mail/smtp.py, aiosmtplib; needs nothing from the spider).
"""

from __future__ import annotations

# the errors live in errors.py, which the providers import: no cycle through this package's __init__
from crawler.removal.mail.errors import MailError, MailOutcomeUnknown, MailProvider, MailRejected, MailUnavailable


def provider_from_crawler(crawler) -> MailProvider:
    """The provider ``MAIL_PROVIDER`` names, for this crawler (one per crawler: the API provider
    has no state of its own, the middlewares hold the token and the pace)."""
    kind = (crawler.settings.get("MAIL_PROVIDER") or "api").strip().lower()
    if kind == "api":
        from crawler.removal.mail.api import ApiProvider

        return ApiProvider.from_crawler(crawler)
    if kind == "smtp":
        from crawler.removal.mail.smtp import SmtpProvider

        return SmtpProvider(crawler.settings)
    raise ValueError(f"MAIL_PROVIDER: unknown provider {kind!r}; expected api or smtp")


def mail_spider_settings(settings) -> dict:
    """Setting overrides for a spider that sends mail (merge them in its ``update_settings``).

    For ``MAIL_PROVIDER=api``: the auth-token middleware fetches tokens from
    ``MAIL_API_URL/auth/token`` with the MAIL_API_CLIENT_* credentials and sends them to the
    mail API's host only; the rate limiter keeps ``MAIL_API_MIN_INTERVAL_SECONDS`` for that
    host; two small middlewares of ``api.py`` make the engine's direct downloads wait out
    deferrals and keep a send whose answer was lost from being retried. For ``smtp``: nothing.
    """
    kind = (settings.get("MAIL_PROVIDER") or "api").strip().lower()
    if kind != "api":
        return {}
    from crawler.removal.mail.api import api_spider_settings

    return api_spider_settings(settings)


__all__ = [
    "MailError",
    "MailOutcomeUnknown",
    "MailProvider",
    "MailRejected",
    "MailUnavailable",
    "mail_spider_settings",
    "provider_from_crawler",
]
