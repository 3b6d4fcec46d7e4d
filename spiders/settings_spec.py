"""Settings of the spiders: the example site, broker site definitions, the events API."""

from __future__ import annotations

from urllib.parse import urlsplit

from crawler.notation import parse_mapping
from crawler.setting import Component, Setting, redact_url


def check_base_urls(value) -> None:
    try:
        urls = parse_mapping(value)
    except ValueError as exc:
        raise ValueError(f"expected id=url,id=url or JSON {{id: url}} ({exc})") from None
    for site, url in urls.items():
        parts = urlsplit(str(url))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{site}: expected an http(s):// URL, got {redact_url(str(url))!r}")


EXAMPLE = Component(
    "Example spider",
    "spiders/example.py",
    (Setting("EXAMPLE_BASE_URL", "url", "http://127.0.0.1:8100", "the example spider's site (the sandbox directory)"),),
)

SITES = Component(
    "Broker site definitions",
    "spiders/broker.py",
    (
        Setting(
            "SITES_BASE_URLS",
            "str",
            "",
            "base URLs replacing the site definitions' `base_url` (e.g. the sandbox's ports)",
            check=check_base_urls,
            accepts="`id=url,id=url`",
        ),
        Setting("SITES_MAX_PAGES", "int", "5", "result pages followed per search of a site", min=1),
        Setting("SITES_MAX_CANDIDATES", "int", "50", "detail pages fetched per site and crawl", min=1),
    ),
)

EVENTS = Component(
    "Events spider",
    "spiders/events.py",
    (
        Setting("EVENTS_BASE_URL", "url", "http://127.0.0.1:8200", "the events spider's API (`-a base_url` overrides)"),
        Setting(
            "EVENTS_API_KEY",
            "str",
            "",
            "its key (`-a api_key` overrides); sent in `API_KEY_HEADER` to that host only",
            secret=True,
        ),
        Setting("EVENTS_PROGRESS_SECONDS", "number", "10", "how often the events spider logs its progress", above=0),
    ),
)

COMPONENTS = (EXAMPLE, SITES, EVENTS)
