"""Structured, redacted logging for every process of the project.

One root handler, installed by ``install_logging`` (our ``crawl`` command does it
before Scrapy starts; the RuntimeCheck extension does it for in-process crawls),
replaces Scrapy's: JSON lines with ``LOG_FORMAT=json``, readable text otherwise.
A filter on that handler redacts every record whatever logger produced it:
the message after formatting, extra fields, exception and stack text.

What is masked:
- e-mail addresses and phone numbers anywhere;
- values of known personal or secret fields in dict reprs, JSON and key=value text;
- passwords in URLs, and (LOG_REDACT_URLS) URL paths and queries, which on
  broker sites carry names: they become a short hash, still good for correlation;
- the values a scan is about (``register_pii``): the target's name, e-mail...
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import sys
import threading
import traceback
from typing import Any

import orjson
from scrapy.logformatter import LogFormatter

MASK = "[redacted]"

PII_FIELDS = (
    "first_name",
    "last_name",
    "middle_name",
    "full_name",
    "name",
    "names",
    "alias",
    "aliases",
    "email",
    "emails",
    "phone",
    "phones",
    "address",
    "addresses",
    "street",
    "zip",
    "zipcode",
    "city",
    "dob",
    "birth_date",
    "birthdate",
    "relative",
    "relatives",
    "value",
    "target",
)
SECRET_FIELDS = (
    "password",
    "passwd",
    "secret",
    "token",
    "access_token",
    "refresh_token",
    "api_key",
    "apikey",
    "x-api-key",
    "authorization",
    "cookie",
    "set-cookie",
    "crawler_encryption_keys",
    "crawler_blind_index_key",
    "openai_api_key",
)
SENSITIVE_FIELDS = frozenset(PII_FIELDS + SECRET_FIELDS)

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Formatted phone numbers ((217) 555-0123, 217-555-0123, +1 217.555.0123) and bare
# 10-digit runs (or 11 starting with 1). Longer digit runs (epoch ms) are left alone.
PHONE_RE = re.compile(
    r"(?<![\w.])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?![\w])"
    r"|(?<![\w.])(?:\+?1)?\d{10}(?![\w.])"
)
# (closing brackets end a URL: log lines wrap URLs in <...> and (referer: ...))
URL_RE = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^\s/'\"<>@]+@)?([^\s/?#'\"<>)\]]*)([^\s'\"<>)\]]*)")
_FIELD_NAMES = "|".join(sorted((re.escape(f) for f in SENSITIVE_FIELDS), key=len, reverse=True))
# 'email': 'x', "email": "x", email=x, 'phones': ['a', 'b'], Authorization: Bearer x
FIELD_RE = re.compile(
    rf"""(?P<key>(?<![\w-])(?P<q>['"]?)(?:{_FIELD_NAMES})(?P=q)\s*[:=]\s*)"""
    r"""(?P<value>\[[^\]]*\]|\([^)]*\)|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,;}&]+)""",
    re.IGNORECASE,
)

STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class Redactor:
    """Masks personal data and secrets in text and structured values."""

    def __init__(self, redact_urls: bool = True):
        self.redact_urls = redact_urls
        self._known: set[str] = set()
        self._known_re: re.Pattern[str] | None = None
        self._lock = threading.Lock()

    def register(self, *values: str | None) -> None:
        """Mask these values (and each word of them) wherever they appear from now on."""
        words = set()
        for value in values:
            for word in re.split(r"[\s,@.+_/-]+", str(value or "")):
                if len(word) >= 2 and not word.isdigit():
                    words.add(word.lower())
        with self._lock:
            if not words - self._known:
                return
            self._known |= words
            alternatives = "|".join(sorted(map(re.escape, self._known), key=len, reverse=True))
            self._known_re = re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])", re.IGNORECASE)

    def _url(self, match: re.Match[str]) -> str:
        scheme, credentials, host, rest = match.groups()
        if credentials:
            user = credentials[:-1].split(":", 1)[0]
            credentials = f"{user}:***@" if ":" in credentials else credentials
        if self.redact_urls and rest.strip("/"):
            rest = "/~" + hashlib.sha256(rest.encode()).hexdigest()[:10]
        return f"{scheme}{credentials or ''}{host}{rest}"

    def text(self, text: str) -> str:
        text = URL_RE.sub(self._url, text)
        text = FIELD_RE.sub(lambda m: m.group("key") + MASK, text)
        text = EMAIL_RE.sub(MASK, text)
        text = PHONE_RE.sub(MASK, text)
        if self._known_re is not None:
            text = self._known_re.sub(MASK, text)
        return text

    def value(self, value: Any, key: str | None = None) -> Any:
        if key is not None and key.lower() in SENSITIVE_FIELDS and value not in (None, "", [], {}):
            return MASK
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v, str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple, set)):
            return [self.value(v) for v in value]
        if value is None or isinstance(value, (bool, int, float)):
            return value
        return self.text(str(value))


redactor = Redactor()


def register_pii(*values: str | None) -> None:
    """Tell the central redactor about values a job handles (e.g. a scan target)."""
    redactor.register(*values)


class RedactionFilter(logging.Filter):
    """Rewrites each record in place so no handler or formatter sees the clear values."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad format string must not lose the record
            message = f"{record.msg!r} (unformattable log arguments: {type(exc).__name__})"
        record.msg, record.args = redactor.text(message), ()
        for key in set(vars(record)) - STANDARD_ATTRS:
            setattr(record, key, redactor.value(getattr(record, key), key))
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.exc_text:
            record.exc_text = redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = redactor.text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in sorted(set(vars(record)) - STANDARD_ATTRS):
            entry[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry, default=str).decode()


class PrivacyLogFormatter(LogFormatter):
    """Scrapy's item log lines without the item's contents (they are personal data)."""

    @staticmethod
    def _without_item(result: dict[str, Any], item: Any) -> dict[str, Any]:
        result["args"] = {**result["args"], "item": f"<{type(item).__name__}>"}
        return result

    def scraped(self, item, *args, **kwargs):
        return self._without_item(super().scraped(item, *args, **kwargs), item)

    def dropped(self, item, *args, **kwargs):
        return self._without_item(super().dropped(item, *args, **kwargs), item)

    def item_error(self, item, *args, **kwargs):
        return self._without_item(super().item_error(item, *args, **kwargs), item)


_installed: logging.Handler | None = None

TEXT_FORMAT = "%(asctime)s [%(name)s] %(levelname)s: %(message)s"


def install_logging(settings) -> logging.Handler:
    """Install (or replace) the project's redacting root handler from settings."""
    global _installed
    from scrapy.utils.log import _uninstall_scrapy_root_handler

    from crawler.config import flag, log_level  # config imports security, not logs

    handler: logging.Handler
    if settings.get("LOG_FILE"):
        mode = "a" if settings.getbool("LOG_FILE_APPEND", True) else "w"
        handler = logging.FileHandler(settings["LOG_FILE"], mode=mode, encoding=settings.get("LOG_ENCODING") or "utf-8")
    elif settings.getbool("LOG_ENABLED", True):
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.NullHandler()
    fmt = settings.get("LOG_FORMAT") or "text"
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        text_format = TEXT_FORMAT if fmt == "text" else fmt
        handler.setFormatter(logging.Formatter(text_format, settings.get("LOG_DATEFORMAT") or "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(log_level(settings))
    redactor.redact_urls = flag(settings, "LOG_REDACT_URLS")
    handler.addFilter(RedactionFilter())

    root = logging.getLogger()
    _uninstall_scrapy_root_handler()
    if _installed is not None:
        root.removeHandler(_installed)
        _installed.close()
    root.setLevel(logging.NOTSET)
    root.addHandler(handler)
    _installed = handler
    logging.captureWarnings(True)
    # pgserver narrates every pg_ctl call at INFO; its warnings are enough
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    return handler
