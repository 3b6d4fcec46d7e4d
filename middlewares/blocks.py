"""Block detection: a captcha, a JavaScript interstitial, a rate-limit page served
with status 200 or a hard 403/429 is never parsed as "no results".

Each response is classified by generic signatures plus the site's own (the
spider's ``block_signatures`` attribute, from its site definition, or
``meta["block_signatures"]``: ``{kind: [substring or /regex/, ...]}``). A match
sets ``meta["block"]`` to one of ``captcha``, ``interstitial``, ``rate_limited``,
``blocked``; downstream, the rate limiter pauses the key on ``rate_limited``,
the circuit breaker counts the others as failures, and the retry middleware
retries the request and, when attempts run out, dead-letters it and keeps the
page away from the spider. Counted in stats per kind and domain; the first
block of each kind on a domain is logged, and each is sent as the
``block_detected`` signal, which the scan tracker counts per site on the scan row.
"""

from __future__ import annotations

import logging
import re

from scrapy.exceptions import NotConfigured
from scrapy.http import TextResponse
from scrapy.utils.httpobj import urlparse_cached

from crawler.config import flag
from crawler.notation import parse_pattern
from crawler.signals import block_detected

logger = logging.getLogger(__name__)


KINDS = ("captcha", "interstitial", "rate_limited", "blocked")
GENERIC_SIGNATURES = {
    "captcha": ["g-recaptcha", "h-captcha", "cf-turnstile", "/captcha/i", "<title>Attention Required"],
    "interstitial": [
        "Just a moment...",
        "/checking (if the site connection is secure|your browser)/i",
        "cf-browser-verification",
        "_cf_chl",
    ],
    "rate_limited": ["/rate limit exceeded/i", "/too many requests/i"],
    "blocked": ["/access denied/i", "/you have been blocked/i"],
}
SCAN_BYTES = 65536  # signatures sit near the top of a page; do not scan megabytes


REGEX_SYNTAX = frozenset(".^$*+?{}[]\\|()")


class Signature:
    """One signature, tested the cheap way: a case-insensitive regex costs about a hundred times a
    substring test on a page, so ``/text/i`` without regex syntax becomes a substring of the
    lower-cased page, and ``/regex/i`` without capitals a case-sensitive regex on it."""

    __slots__ = ("on_lowered", "test")

    def __init__(self, text: str):
        pattern = parse_pattern(text)
        self.on_lowered = False
        if isinstance(pattern, str):
            self.test = lambda text, needle=pattern: needle in text
            return
        body = pattern.pattern
        if pattern.flags & re.IGNORECASE and body == body.lower() and "(?" not in body:
            self.on_lowered = True
            if REGEX_SYNTAX.isdisjoint(body):
                self.test = lambda text, needle=body: needle in text
            else:
                self.test = re.compile(body, pattern.flags & ~re.IGNORECASE).search
        else:
            self.test = pattern.search

    def found(self, text: str, lowered: str) -> bool:
        return bool(self.test(lowered if self.on_lowered else text))


def compile_signatures(signatures: dict[str, list[str]]) -> dict[str, list[Signature]]:
    """``/.../i`` strings become regexes; anything else is a plain substring."""
    compiled: dict[str, list] = {}
    for kind, patterns in signatures.items():
        if kind not in KINDS:
            raise ValueError(f"unknown block kind {kind!r} (expected one of {', '.join(KINDS)})")
        compiled[kind] = [Signature(pattern) for pattern in patterns]
    return compiled


def matches(signatures, text: str, lowered: str | None = None) -> bool:
    if not signatures:
        return False
    lowered = text.lower() if lowered is None else lowered
    return any(s.found(text, lowered) for s in signatures)


class BlockDetectionMiddleware:
    def __init__(self, crawler):
        if not flag(crawler.settings, "BLOCKS_ENABLED"):
            raise NotConfigured
        self.crawler = crawler
        self.stats = crawler.stats
        self.generic = compile_signatures(GENERIC_SIGNATURES)
        self.site_cache: dict[int, dict] = {}
        self.seen: set[tuple[str, str]] = set()

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def site_signatures(self, request) -> dict:
        raw = request.meta.get("block_signatures") or getattr(self.crawler.spider, "block_signatures", None)
        if not raw:
            return {}
        cached = self.site_cache.get(id(raw))
        if cached is None:
            cached = self.site_cache[id(raw)] = compile_signatures(raw)
        return cached

    def classify(self, request, response) -> str | None:
        if response.status == 429:
            return "rate_limited"
        site = self.site_signatures(request)
        path = urlparse_cached(response).path.lower()
        if "captcha" in path:
            return "captcha"
        content_type = (response.headers.get(b"Content-Type") or b"text/html").lower()
        if isinstance(response, TextResponse) and b"html" in content_type:
            # decode only the head: signatures sit near the top, pages can be megabytes
            head = response.body[:SCAN_BYTES].decode(response.encoding, errors="replace")
            lowered = head.lower()
            for kind in KINDS:
                if matches(site.get(kind, ()), head, lowered) or matches(self.generic.get(kind, ()), head, lowered):
                    return kind
        if response.status == 403:
            return "blocked"
        return None

    def process_response(self, request, response):
        if request.meta.get("dont_detect_blocks"):
            return response
        kind = self.classify(request, response)
        if kind is None:
            request.meta.pop("block", None)
            return response
        request.meta["block"] = kind
        domain = urlparse_cached(request).hostname or ""
        self.stats.inc_value(f"blocks/{kind}")
        self.stats.inc_value(f"blocks/{kind}/{domain}")
        self.crawler.signals.send_catch_log(block_detected, request=request, kind=kind, domain=domain)
        if (domain, kind) not in self.seen:
            self.seen.add((domain, kind))
            logger.warning("block detected on %s: %s (status %d)", domain, kind, response.status)
        return response
