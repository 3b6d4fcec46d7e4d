"""What a send can end in (see ``crawler.removal.mail``): the three errors and the provider protocol."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class MailError(Exception):
    """A send failed; ``reason`` is safe to log (no address, subject, body or token)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class MailRejected(MailError):
    """Permanent: the provider refused this message (e.g. 400 invalid address); never retried."""


class MailUnavailable(MailError):
    """Transient: nothing was accepted (retries exhausted, provider down); safe to send again later."""


class MailOutcomeUnknown(MailError):
    """The request may have reached the provider and the answer was lost: the mail may have gone out."""


@runtime_checkable
class MailProvider(Protocol):
    async def send(self, to: str, subject: str, body: str) -> str:
        """Send one message; returns the provider's message id or raises a ``MailError``."""
        ...
