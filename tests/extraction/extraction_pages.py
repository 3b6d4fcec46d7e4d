"""Pages for the engine tests: small hand-written ones (tests/extraction/fixtures/) and the sites' saved
sandbox pages (tests/sites/fixtures/<site>/), as Scrapy responses."""

from __future__ import annotations

from pathlib import Path

from scrapy.http import HtmlResponse, Request

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SITE_FIXTURES = Path(__file__).resolve().parents[1] / "sites" / "fixtures"


def page(name: str, url: str = "http://engine.test/page") -> HtmlResponse:
    """tests/extraction/fixtures/<name>.html."""
    body = (FIXTURES / f"{name}.html").read_bytes()
    return HtmlResponse(url=url, body=body, encoding="utf-8", request=Request(url))


def site_page(site: str, name: str, url: str) -> HtmlResponse:
    """A site's saved page, tests/sites/fixtures/<site>/<name>.html."""
    body = (SITE_FIXTURES / site / f"{name}.html").read_bytes()
    return HtmlResponse(url=url, body=body, encoding="utf-8", request=Request(url))
