"""Fetch URLs through the full middleware stack and report each outcome.

    scrapy crawl fetch -a urls=URL[,URL...] [-O results.jsonl]
    scrapy crawl fetch -a url_template='http://host/item/{n}' -a count=N

Yields one record per URL: ``{"n", "status", "retries"}`` or, when the request
failed for good, ``{"n", "error", "status"}``. Useful to check a site or API
against the rate limits, retries and circuit breaker before writing its
spider, and used by the tests and ``bench/middlewares.py``. Stores nothing
else; the URLs are not logged in the clear (LOG_REDACT_URLS).
"""

import scrapy

from crawler.spider_args import SpiderArgumentError


class FetchSpider(scrapy.Spider):
    name = "fetch"

    def __init__(self, urls: str = "", url_template: str = "", count: str = "1", ratelimit_rps: str = "", **kwargs):
        super().__init__(**kwargs)
        self.spider_arguments = {
            "urls": urls,
            "url_template": url_template,
            "count": count,
            "ratelimit_rps": ratelimit_rps,
        }
        self.urls = self.parse_arguments(urls, url_template, count)
        if ratelimit_rps:
            try:
                self.ratelimit_rps = float(ratelimit_rps)
            except ValueError:
                raise SpiderArgumentError("ratelimit_rps", f"expected a number, got {ratelimit_rps!r}") from None

    @staticmethod
    def parse_arguments(urls: str, url_template: str, count: str) -> list[str]:
        if bool(urls) == bool(url_template):
            raise SpiderArgumentError("urls", "give either -a urls=URL,URL or -a url_template=...{n} -a count=N")
        if urls:
            listed = [u.strip() for u in urls.split(",") if u.strip()]
        else:
            if "{n}" not in url_template:
                raise SpiderArgumentError("url_template", "must contain {n}")
            if not str(count).isdigit() or int(count) < 1:
                raise SpiderArgumentError("count", f"expected a whole number >= 1, got {count!r}")
            listed = [url_template.replace("{n}", str(n)) for n in range(int(count))]
        if bad := [u for u in listed if not u.startswith(("http://", "https://"))]:
            raise SpiderArgumentError("urls", f"expected http(s):// URLs ({len(bad)} not)")
        return listed

    @classmethod
    def check_arguments(cls, kwargs: dict) -> dict:
        cls.parse_arguments(kwargs.get("urls", ""), kwargs.get("url_template", ""), kwargs.get("count", "1"))
        return kwargs

    async def start(self):
        for n, url in enumerate(self.urls):
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, cb_kwargs={"n": n})

    def parse(self, response, n):
        yield {"n": n, "status": response.status, "retries": response.meta.get("retry_times", 0)}

    def failed(self, failure):
        request = failure.request
        yield {
            "n": request.cb_kwargs.get("n"),
            "error": type(failure.value).__name__,
            "status": getattr(getattr(failure.value, "response", None), "status", None),
        }
