"""Saved pages of tests/sites/fixtures/<site>/ as Scrapy responses (shared by the site fixture tests)."""

from __future__ import annotations

from pathlib import Path

from scrapy.http import HtmlResponse, Request

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def page(site: str, name: str, url: str, meta: dict | None = None) -> HtmlResponse:
    body = (FIXTURES / site / f"{name}.html").read_bytes()
    return HtmlResponse(url=url, body=body, encoding="utf-8", request=Request(url, meta=meta or {}))
