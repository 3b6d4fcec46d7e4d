"""Where an opt-out flow's steps run: plain HTTP through Scrapy, or a Chromium page.

Both drivers send every request through the crawler's engine (``engine.download_async``), so the
downloader middlewares apply: the site's rate and download slot (``meta["site"]`` as the broker
spider sets it), cookies in one cookiejar per request (``meta["cookiejar"]``), the rate limiter.
Retries are the flow's (backoff in the store), not the retry middleware's: a form post retried by a
middleware could reach the broker twice, and a request given up on would become a dead letter with
the listing in it. Blocks are not the block detector's either: a CAPTCHA is a task (captcha.py).

- HttpDriver: ``get``/``follow`` load pages, ``fill`` keeps form values for the next ``submit``, which
  is FormRequest.from_response (the form's hidden inputs, CSRF tokens, travel with it; the session
  cookie is in the jar).
- BrowserDriver: scrapy-playwright with ``playwright_include_page`` in a browser context of the
  request's own; the page is driven with Playwright's API and always closed, with its context.

``SubmissionNotSent`` means the submission surely never reached the broker (connection refused, a 4xx
refusal): it may be made again. Any other error after a submission started leaves it unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from scrapy import Request
from scrapy.exceptions import CannotResolveHostError, DownloadConnectionRefusedError
from scrapy.http import FormRequest, HtmlResponse
from twisted.internet.error import ConnectError, ConnectionRefusedError, DNSLookupError

from crawler.extraction import marker_matches
from crawler.removal.captcha import captcha_on
from crawler.removal.flows import Selector
from crawler.resilience.budget import parse_retry_after

# failures to connect: nothing was sent
NOT_SENT_ERRORS = (
    DownloadConnectionRefusedError,
    CannotResolveHostError,
    ConnectionRefusedError,
    ConnectError,
    DNSLookupError,
)
BROWSER_TIMEOUT_MS = 15_000
PAGE_ATTEMPTS = 3  # loads of one page (never of a submission) before the step fails
PAGE_RETRY_WAIT = 0.5  # seconds, times the attempt
PAGE_RETRY_MAX_WAIT = 10.0  # a longer Retry-After is left to the flow's backoff
EXPECT_WAIT_SECONDS = 10.0


class StepError(Exception):
    """A step did not work: one line without personal data (a status, a step kind, a marker kind)."""


class SubmissionNotSent(StepError):
    """The submission surely did not reach the broker."""


def site_meta(definition, **extra) -> dict:
    """The broker spider's per-site meta: rate, slot; no retries or block detection (see above)."""
    meta = {
        "site": definition.id,
        "ratelimit_key": f"site:{definition.id}",
        "ratelimit_rps": definition.requests_per_minute / 60,
        "download_slot": definition.id,
        "dont_retry": True,
        "dont_detect_blocks": True,
        "handle_httpstatus_all": True,
        **extra,
    }
    return meta


def link_of(response, target: Selector) -> str | None:
    """The URL a selector names on a page: an ``::attr(...)``/text result, or an element's href."""
    found = response.css(target.css) if target.css else response.xpath(target.xpath)
    if not found:
        return None
    first = found[0]
    value = first.attrib.get("href") if getattr(first.root, "tag", None) else first.get()
    return response.urljoin(value.strip()) if value and value.strip() else None


class HttpDriver:
    def __init__(self, crawler, definition, jar: str, site_markers=()):
        self.crawler = crawler
        self.definition = definition
        self.jar = jar
        self.site_markers = site_markers
        self.page = None  # the last response
        self.fields: dict[str, str] = {}

    def request(self, url: str, **kwargs) -> Request:
        return Request(url, meta=site_meta(self.definition, cookiejar=self.jar), dont_filter=True, **kwargs)

    async def download(self, request) -> object:
        """A page (never a submission): a 5xx, a 429 or a lost connection is tried again a few times,
        a moment apart, in the same cookiejar (an interstitial's 503 sets the cookie that passes it)."""
        for attempt in range(1, PAGE_ATTEMPTS + 1):
            wait = PAGE_RETRY_WAIT * attempt
            try:
                response = await self.crawler.engine.download_async(request.replace())
            except Exception as exc:
                if attempt == PAGE_ATTEMPTS:
                    raise StepError(f"{type(exc).__name__} loading a page") from None
            else:
                if attempt == PAGE_ATTEMPTS or not (response.status >= 500 or response.status == 429):
                    return response
                retry_after = parse_retry_after(response.headers) or 0.0
                if retry_after > PAGE_RETRY_MAX_WAIT:  # a long pause: the flow's backoff handles it
                    return response
                wait = max(wait, retry_after)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def get(self, url: str, page_methods=()):
        self.page = await self.download(self.request(url))
        return self.page

    async def follow(self, target: Selector):
        url = link_of(self.page, target)
        if url is None:
            raise StepError("the link to follow is not on the page")
        return await self.get(url)

    async def click(self, target: Selector):
        return await self.follow(target)

    async def fill(self, fields: dict[str, str]) -> None:
        self.fields.update(fields)

    def has(self, marker) -> bool:
        return marker_matches(list(marker), self.page)

    async def expect(self, marker) -> bool:
        return self.page is not None and self.has(marker)

    def captcha(self) -> bool:
        return self.page is not None and captcha_on(self.page, self.site_markers)

    @property
    def status(self) -> int:
        return getattr(self.page, "status", 0)

    async def submit(self, form: str | None, css: str | None):
        """Post the form with the filled values. Returns the answer; SubmissionNotSent / StepError."""
        try:
            request = FormRequest.from_response(
                self.page,
                formcss=form,
                formdata=self.fields,
                meta=site_meta(self.definition, cookiejar=self.jar),
                dont_filter=True,
            )
        except ValueError:
            raise SubmissionNotSent("the form is not on the page") from None
        try:
            response = await self.crawler.engine.download_async(request)
        except NOT_SENT_ERRORS as exc:
            raise SubmissionNotSent(f"{type(exc).__name__} posting the form") from None
        except Exception as exc:
            raise StepError(f"{type(exc).__name__} posting the form") from None
        self.page, self.fields = response, {}
        if 400 <= response.status < 500:
            raise SubmissionNotSent(f"the form was refused with HTTP {response.status}")
        if response.status >= 500:  # the broker may have recorded it before failing: unknown
            raise StepError(f"HTTP {response.status} answering the form")
        return response

    async def close(self) -> None:
        self.page = None


class BrowserDriver(HttpDriver):
    """A Chromium page in the request's own browser context."""

    def __init__(self, crawler, definition, jar: str, site_markers=()):
        super().__init__(crawler, definition, jar, site_markers)
        self.tab = None  # the Playwright page
        self.response_status = 0

    async def snapshot(self) -> HtmlResponse:
        body = await self.tab.content()
        self.page = HtmlResponse(self.tab.url, body=body.encode(), encoding="utf-8", status=self.response_status)
        return self.page

    async def get(self, url: str, page_methods=()):
        """Open ``url`` (the first time in a new page of the request's context, running
        ``page_methods``: a site's detail actions)."""
        if self.tab is None:
            meta = site_meta(
                self.definition,
                playwright=True,
                playwright_include_page=True,
                playwright_context=self.jar,
                playwright_page_methods=list(page_methods),
                cookiejar=self.jar,
            )
            response = await self.download(Request(url, meta=meta, dont_filter=True))
            self.tab = response.meta.get("playwright_page")
            if self.tab is None:
                raise StepError("the browser gave no page")
            self.tab.set_default_timeout(BROWSER_TIMEOUT_MS)
            self.response_status = response.status
        else:
            try:
                answer = await self.tab.goto(url)
            except Exception as exc:
                raise StepError(f"{type(exc).__name__} loading a page in the browser") from None
            self.response_status = answer.status if answer is not None else 200
        return await self.snapshot()

    async def click(self, target: Selector):
        selector = target.css if target.css else f"xpath={target.xpath}"
        if target.css and "::" in target.css:  # a link read from the page, then opened
            return await self.follow(target)
        try:
            await self.tab.click(selector)
            await self.tab.wait_for_load_state()
        except Exception as exc:
            raise StepError(f"{type(exc).__name__} clicking in the browser") from None
        return await self.snapshot()

    async def fill(self, fields: dict[str, str]) -> None:
        try:
            for selector, value in fields.items():
                await self.tab.fill(selector, value)
        except Exception as exc:
            raise StepError(f"{type(exc).__name__} filling a field in the browser") from None

    async def expect(self, marker) -> bool:
        """Pages of JavaScript apps change after a while: look again until the marker shows or time is up."""
        deadline = time.monotonic() + EXPECT_WAIT_SECONDS
        while True:
            await self.snapshot()
            if self.has(marker):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.2)

    async def submit(self, form: str | None, css: str | None):
        try:
            if css:
                await self.tab.click(css)
            else:
                await self.tab.eval_on_selector(form or "form", "f => f.requestSubmit ? f.requestSubmit() : f.submit()")
            await self.tab.wait_for_load_state()
        except Exception as exc:
            raise StepError(f"{type(exc).__name__} submitting in the browser") from None
        return await self.snapshot()

    async def close(self) -> None:
        tab, self.tab = self.tab, None
        if tab is None:
            return
        try:
            await tab.close()
        finally:
            # closed already (the browser went away): nothing left to free
            with contextlib.suppress(Exception):
                await tab.context.close()
