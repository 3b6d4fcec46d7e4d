"""Block signatures tested the cheap way find exactly what the plain patterns find."""

import pytest

from crawler.notation import parse_pattern, pattern_in
from middlewares.blocks import GENERIC_SIGNATURES, Signature, compile_signatures, matches

PATTERNS = [
    "g-recaptcha",  # a plain substring: case counts
    "Just a moment...",
    "/captcha/i",  # a word, any case: a substring of the lower-cased page
    "/rate limit exceeded/i",
    "/checking (if the site connection is secure|your browser)/i",  # a regex on the lower-cased page
    r"/access\s+denied/i",
    r"/\S+ blocked/i",  # capitals in the regex (\S): left as it is
    "/Too Many/i",  # capitals in the text: left as it is
    "/(?s)deny.*all/i",  # inline flags: left as it is
    "/Rate Limit/",  # case-sensitive regex
]
TEXTS = [
    "<div class='g-recaptcha'></div>",
    "<div class='G-RECAPTCHA'></div>",
    "<title>Just a moment...</title>",
    "<title>just a moment...</title>",
    "Please solve the CAPTCHA",
    "Rate Limit Exceeded",
    "Checking Your Browser before accessing",
    "ACCESS   DENIED",
    "You are BLOCKED",
    "too many requests",
    "DENY\nthem ALL",
    "nothing to see",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("pattern", PATTERNS)
def test_a_signature_matches_where_its_pattern_matches(pattern, text):
    assert Signature(pattern).found(text, text.lower()) == pattern_in(parse_pattern(pattern), text)


def test_matches_lowers_the_text_itself_when_not_given():
    generic = compile_signatures(GENERIC_SIGNATURES)
    assert matches(generic["rate_limited"], "<h1>Too Many Requests</h1>")
    assert not matches(generic["rate_limited"], "<h1>Lab page 7</h1>")
    assert not matches([], "anything")
