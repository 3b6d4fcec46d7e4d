"""CAPTCHA markers: a page of an opt-out flow that carries one is a task for a person.

CAPTCHAs are never solved or bypassed. Every page a flow opens is checked against the generic markers
below (reCAPTCHA, hCaptcha, Turnstile widgets and forms that ask for a captcha) plus the site's own
``opt_out.captcha`` markers; a hit makes the request ``needs_human`` with a captcha task.
"""

from __future__ import annotations

from crawler.extraction import marker_matches

GENERIC_MARKERS: tuple[dict, ...] = (
    {"css": ".g-recaptcha, .h-captcha, .cf-turnstile, [data-sitekey]"},
    {"css": "iframe[src*=recaptcha], iframe[src*=hcaptcha], iframe[src*=turnstile]"},
    {"css": "script[src*='recaptcha/api'], script[src*='hcaptcha.com'], script[src*='challenges.cloudflare.com']"},
    # a form that asks for a captcha answer
    {"xpath": "//form//*[contains(translate(@name, 'CAPTH', 'capth'), 'captcha')]"},
    {"xpath": "//form[contains(translate(@action, 'CAPTH', 'capth'), 'captcha')]"},
)


def captcha_on(response, site_markers=()) -> bool:
    """Whether the page (a Scrapy response, rendered or not) shows a CAPTCHA."""
    if not hasattr(response, "css"):
        return False
    return marker_matches(list(GENERIC_MARKERS), response) or marker_matches(list(site_markers), response)
