"""Pages for ``python -m crawler.healing check``, fetched as the crawl would see them.

- ``render: http`` sites: urllib with a cookie jar, a browser User-Agent and the definition's ``headers``;
  a 503 interstitial that sets a cookie (a Cloudflare-like "Just a moment...") is retried once with it.
- ``render: browser`` sites: Chromium through Playwright; the definition's page actions of the kind read
  are run (``click``, ``wait_for``, ``press``, ``wait``, ``evaluate``; ``fill`` needs a person's values and
  is skipped), each tolerated when it fails: the page is read as it is then.

Errors name the page by its position (``--url 2``) and host only: a URL path may hold a person's name.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request

from scrapy.http import HtmlResponse, Request
from scrapy.http.headers import Headers
from scrapy.responsetypes import responsetypes

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
FETCH_TIMEOUT = 30
ACTION_TIMEOUT_MS = 10_000
CHROMIUM = "/usr/bin/chromium"


class FetchError(Exception):
    """One line: which page (by position and host) and why."""


def where(number: int, url: str) -> str:
    return f"--url {number} ({urllib.parse.urlsplit(url).netloc or 'no host'})"


class HttpFetcher:
    def __init__(self, headers: dict | None = None):
        self.jar = http.cookiejar.CookieJar()
        self.opener = http_opener(self.jar)
        self.headers = {"User-Agent": USER_AGENT, **{str(k): str(v) for k, v in (headers or {}).items()}}

    def get(self, number: int, url: str):
        for attempt in (1, 2):
            request = urllib.request.Request(url, headers=self.headers)  # noqa: S310 (http_opener: http(s) only)
            try:
                with self.opener.open(request, timeout=FETCH_TIMEOUT) as answer:
                    return _response(answer.geturl(), answer.status, answer.headers, answer.read())
            except urllib.error.HTTPError as error:
                # an interstitial sets its clearance cookie on the 503: the second attempt carries it
                if error.code == 503 and attempt == 1 and error.headers.get_all("Set-Cookie"):
                    error.read()
                    continue
                raise FetchError(f"{where(number, url)}: HTTP {error.code}") from None
            except (urllib.error.URLError, OSError) as error:
                raise FetchError(f"{where(number, url)}: cannot fetch ({getattr(error, 'reason', error)})") from None
        raise FetchError(f"{where(number, url)}: HTTP 503 twice (an interstitial this client cannot pass)")


def http_opener(jar) -> urllib.request.OpenerDirector:
    """urllib with http(s) only (no file: or ftp:), cookies kept, redirects followed."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPRedirectHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        urllib.request.HTTPCookieProcessor(jar),
    ):
        opener.add_handler(handler)
    return opener


def _response(url: str, status: int, headers, body: bytes):
    scrapy_headers = Headers(dict(headers.items()))
    cls = responsetypes.from_args(headers=scrapy_headers, url=url, body=body)
    return cls(url=url, status=status, headers=scrapy_headers, body=body, request=Request(url))


def simple_actions(actions: list | None) -> list[dict]:
    """The actions this command can run without a person's values."""
    return [a for a in actions or () if any(k in a for k in ("click", "wait_for", "press", "wait", "evaluate"))]


class BrowserFetcher:
    """Chromium for the command's lifetime (``async with``); ``get`` renders one page and runs actions."""

    def __init__(self, headers: dict | None = None):
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self._playwright = self._browser = self._context = None
        self.failed_actions = 0

    async def __aenter__(self):
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        self._browser = await self._playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        # one context: cookies (a terms modal accepted once) last across the pages, as in a crawl
        self._context = await self._browser.new_context(user_agent=USER_AGENT, extra_http_headers=self.headers)
        return self

    async def __aexit__(self, *exc):
        await self._browser.close()
        await self._playwright.stop()

    async def get(self, number: int, url: str, actions_of, prelude: list | None = None):
        """Render ``url``, run ``prelude`` (optional actions such as a terms modal's click, when the kind is
        not known yet); ``actions_of(response)`` says which actions to run on the page as then rendered (the
        kind may only be known from it); the page is read again after them."""
        page = await self._context.new_page()
        try:
            try:
                answer = await page.goto(url, wait_until="networkidle", timeout=FETCH_TIMEOUT * 1000)
            except Exception as exc:  # playwright's errors are many; the line says which page
                raise FetchError(f"{where(number, url)}: cannot render ({type(exc).__name__})") from None
            if answer is not None and answer.status >= 400:
                raise FetchError(f"{where(number, url)}: HTTP {answer.status}")
            for action in simple_actions(prelude):
                await self._run(page, action)
            if prelude:
                await _settle(page)
            first = HtmlResponse(page.url, body=(await page.content()).encode(), encoding="utf-8")
            actions = [a for a in simple_actions(actions_of(first)) if a not in (prelude or [])]
            if not actions:
                return first
            for action in actions:
                await self._run(page, action)
            await _settle(page)
            return HtmlResponse(page.url, body=(await page.content()).encode(), encoding="utf-8")
        finally:
            await page.close()

    async def _run(self, page, action: dict) -> None:
        timeout = 5_000 if action.get("optional") else ACTION_TIMEOUT_MS
        try:
            if "click" in action:
                if action.get("optional") and not await page.query_selector(action["click"]):
                    return
                await page.click(action["click"], timeout=timeout)
            elif "wait_for" in action:
                await page.wait_for_selector(action["wait_for"], timeout=timeout)
            elif "press" in action:
                await page.press(action["press"]["selector"], action["press"]["key"], timeout=timeout)
            elif "wait" in action:
                await page.wait_for_timeout(min(int(action["wait"]), 30_000))
            elif "evaluate" in action:
                await asyncio.wait_for(page.evaluate(action["evaluate"]), timeout=60)
        except Exception:  # an action that fails leaves the page as it is: the report shows what reads
            if not action.get("optional"):
                self.failed_actions += 1


async def _settle(page) -> None:
    with contextlib.suppress(Exception):  # a page that keeps polling is read as it is
        await page.wait_for_load_state("networkidle", timeout=ACTION_TIMEOUT_MS)
