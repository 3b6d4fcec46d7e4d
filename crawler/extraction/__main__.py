"""Check a site definition, wherever the file is, and optionally try it on a live page::

    python -m crawler.extraction check PATH.yaml                       # validate only
    python -m crawler.extraction check PATH.yaml --url URL [--kind list|detail]

A bad file prints one line (``file: key.path: reason``) and exits 1. With ``--url`` the page is fetched
over plain HTTP (no browser: ``render: browser`` pages and their actions are not run), and what each
field extracted is printed, as ``shell.run`` does in ``scrapy shell``. Console only: the values shown are
the page's own.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

from scrapy.http import Request
from scrapy.http.headers import Headers
from scrapy.responsetypes import responsetypes

from crawler.extraction import shell
from crawler.extraction.definitions import DefinitionError, SiteDefinition, load_definition

USER_AGENT = "Mozilla/5.0 (compatible; site-definition-check)"
FETCH_TIMEOUT = 30


class CheckError(Exception):
    """One line for the console."""


def http_opener() -> urllib.request.OpenerDirector:
    """urllib with http(s) only (no file: or ftp: handlers), following redirects."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler,
        urllib.request.HTTPSHandler,
        urllib.request.HTTPRedirectHandler,
        urllib.request.HTTPDefaultErrorHandler,
        urllib.request.HTTPErrorProcessor,
    ):
        opener.add_handler(handler())
    opener.addheaders = [("User-Agent", USER_AGENT)]
    return opener


def fetch(url: str):
    """The page as a Scrapy response (HtmlResponse, TextResponse... by its Content-Type)."""
    try:
        with http_opener().open(url, timeout=FETCH_TIMEOUT) as answer:
            status, final_url, headers, body = answer.status, answer.geturl(), answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        # the spider never reads an error answer: a 404/410 is reported as not_found, others by status
        kind = "not_found" if error.code in (404, 410) else "an error"
        raise CheckError(f"{url}: HTTP {error.code} (the spider reports this page as {kind}, unread)") from None
    except (urllib.error.URLError, OSError) as error:
        raise CheckError(f"{url}: cannot fetch ({getattr(error, 'reason', error)})") from None
    scrapy_headers = Headers(dict(headers.items()))
    cls = responsetypes.from_args(headers=scrapy_headers, url=final_url, body=body)
    return cls(url=final_url, status=status, headers=scrapy_headers, body=body, request=Request(final_url))


def summary(definition: SiteDefinition) -> str:
    raw = definition.raw
    return (
        f"{definition.path}: ok (site {definition.id!r}, render {definition.render}, "
        f"{len(raw['search'])} search entr{'y' if len(raw['search']) == 1 else 'ies'}; "
        f"list fields: {', '.join(raw['list']['fields'])}; detail fields: {', '.join(raw['detail']['fields'])})"
    )


def check(path: str, url: str | None = None, kind: str | None = None) -> None:
    try:
        definition = load_definition(path)
    except DefinitionError as exc:
        raise CheckError(str(exc)) from None
    except OSError as exc:
        raise CheckError(f"{path}: cannot read ({exc.strerror or exc})") from None
    print(summary(definition))
    if url is None:
        return
    if not url.startswith(("http://", "https://")):
        raise CheckError(f"--url: expected an http(s):// URL, got {url!r}")
    if definition.render == "browser":
        print(f"{definition.id}: render is browser; this page is fetched without a browser, actions not run")
    shell.run(definition, fetch(url), kind)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.extraction", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check_parser = commands.add_parser("check", help="validate a site definition file; with --url, try it on a page")
    check_parser.add_argument("path", help="the YAML file (any path; its id must equal its file name)")
    check_parser.add_argument("--url", help="fetch this page and print what each field extracts")
    check_parser.add_argument("--kind", choices=("list", "detail"), help="read the page as this kind (default: guess)")
    args = parser.parse_args(argv)
    try:
        check(args.path, args.url, args.kind)
    except CheckError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
