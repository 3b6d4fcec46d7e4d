"""Bodies the lab serves: small deterministic pages and JSON, and anti-bot block pages.

Everything is text assembled from constants: no templating, no randomness, so
a page costs a few microseconds and the same URL always gives the same bytes.
"""

from __future__ import annotations

import orjson

_WORDS = (
    "resilient crawlers meet servers that throttle, stall, fail and lie; a lab page stands in for one of "
    "the many listings such a crawler fetches, long enough to look like a document and short enough that "
    "serving thousands a second costs nothing. "
)
_FILLERS = tuple("".join(f"<p class='filler'>Section {k + 1}. {_WORDS}</p>" for k in range(i, i + 6)) for i in range(4))


def page_html(n: int) -> bytes:
    """About 2 KB: a title and heading with ``n``, three relative links to ``page/3n+1..3n+3`` and filler."""
    links = "".join(f"<li><a href='page/{3 * n + k}'>Page {3 * n + k}</a></li>" for k in (1, 2, 3))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Lab page {n}</title></head><body>"
        f"<h1 class='title'>Lab page {n}</h1><p class='lead' data-n='{n}'>This is page number {n} of the lab.</p>"
        f"<ul class='links'>{links}</ul>{_FILLERS[n % 4]}</body></html>"
    ).encode()


def json_body(n: int) -> bytes:
    items = [{"id": n * 10 + k, "name": f"item {n}-{k}", "value": (n * 7 + k * 13) % 101} for k in range(5)]
    return orjson.dumps({"n": n, "items": items})


def error_body(code: str, message: str, **extra) -> bytes:
    return orjson.dumps({"error": {"code": code, "message": message, **extra}})


def _html(title: str, body: str, head: str = "") -> bytes:
    return (
        f"<!DOCTYPE html><html lang='en-US'><head><meta charset='UTF-8'><title>{title}</title>{head}</head>"
        f"<body>{body}</body></html>"
    ).encode()


# (status, extra headers, body) of each block page, as anti-bot systems and brokers send them
BLOCKS: dict[str, tuple[int, dict[str, str], bytes]] = {
    "captcha": (
        200,
        {"Server": "cloudflare"},
        _html(
            "Attention Required! | Cloudflare",
            "<div id='cf-wrapper'><h1>Sorry, you have been blocked</h1>"
            "<h2 class='cf-subheadline'>Please complete the security check to access this site</h2>"
            "<form id='challenge-form' method='post'>"
            "<div class='g-recaptcha' data-sitekey='6LfBixYUAAAAABhdHynFUIMA_sa4s-XsJvnjtgB0'></div>"
            "<div class='h-captcha' data-sitekey='10000000-ffff-ffff-ffff-000000000001'></div></form>"
            "<p>Why do I have to complete a CAPTCHA? Completing the CAPTCHA proves you are a human.</p></div>",
            "<script src='https://www.google.com/recaptcha/api.js' async defer></script>",
        ),
    ),
    "interstitial": (
        503,
        {"Server": "cloudflare", "cf-mitigated": "challenge", "Cache-Control": "no-cache"},
        _html(
            "Just a moment...",
            "<div class='main-wrapper'><h1>Checking your browser before accessing the site.</h1>"
            "<p>This process is automatic. Your browser will redirect to your requested content shortly.</p>"
            "<p>Please allow up to 5 seconds&hellip;</p><noscript>Please enable JavaScript and cookies"
            " to continue</noscript></div>",
        ),
    ),
    "soft-limit": (
        200,
        {},
        _html(
            "Rate Limit Exceeded",
            "<div class='notice'><h1>Rate Limit Exceeded</h1><p>You have exceeded the number of searches allowed"
            " for now. Please wait a while before searching again.</p></div>",
        ),
    ),
    "forbidden": (
        403,
        {"Server": "AkamaiGHost"},
        _html(
            "Access Denied",
            "<h1>Access denied</h1>You don't have permission to access this resource on this server.<p>"
            "Reference&#32;&#35;18&#46;4e2f1102&#46;1700000000&#46;1a2b3c4d</p>",
        ),
    ),
}
