"""The web page of the scans service: one server-rendered shell at ``/``, a thin client of the HTTP API.

Why a shell and not server-rendered data: every datum the page shows belongs to the key's user and is
fetched by the browser with ``Authorization: Bearer`` (the key is typed once and kept in
sessionStorage), so this route needs no key and renders nothing personal. What it does render (the
enabled sites for the scan form, the priorities) comes from the site definitions, through Jinja2 with
autoescaping. The JavaScript (``static/js/``, plain ES modules, no build step) writes every value it
receives with DOM APIs (``textContent``, ``createElementNS``), never as HTML: values scraped from broker
pages are attacker-controlled. The strict Content-Security-Policy below is the second line: no inline
script or style, no plugin, no framing, scripts only from this origin.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from crawler.extraction.definitions import load_definitions

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"
PRIORITIES = ("normal", "high", "low")
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "img-src 'self' blob: data:",
        "style-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)


@cache
def templates() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))


@cache
def enabled_sites() -> tuple[tuple[str, str], ...]:
    """(id, name) of every enabled site definition: what a scan without ``sites`` runs (spiders/scan.py)."""
    return tuple((d.id, d.name) for d in load_definitions().values() if d.enabled)


def asset_version() -> str:
    """The newest static file's mtime: a changed script is fetched again, not served from a stale cache."""
    stamps = [p.stat().st_mtime_ns for p in STATIC.rglob("*") if p.is_file()] if STATIC.is_dir() else []
    return str(max(stamps, default=0))


def render(name: str, **context) -> HTMLResponse:
    html = templates().get_template(name).render(**context)
    return HTMLResponse(html, headers=SECURITY_HEADERS)


@router.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    """The page: sign-in, the scan form and list, a scan's progress and findings (switched by the URL's hash)."""
    return render("index.html", sites=enabled_sites(), priorities=PRIORITIES, version=asset_version())
