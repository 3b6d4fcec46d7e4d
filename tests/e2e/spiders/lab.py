"""A test spider for the sandbox lab: requests ``count`` URLs ``{base}/{path}/{n}``
and yields one record per outcome (run with ``scrapy runspider`` from the
repository root, so the project's settings and middlewares apply)."""

import scrapy


class LabSpider(scrapy.Spider):
    name = "lab"

    def __init__(self, base: str, path: str = "json", count: str = "10", ratelimit_rps: str = "", **kwargs):
        super().__init__(**kwargs)
        self.base, self.path, self.count = base.rstrip("/"), path, int(count)
        if ratelimit_rps:
            self.ratelimit_rps = float(ratelimit_rps)

    async def start(self):
        for n in range(self.count):
            url = f"{self.base}/{self.path}/{n}" if self.path else f"{self.base}/{n}"
            yield scrapy.Request(url, callback=self.parse, errback=self.failed, cb_kwargs={"n": n})

    def parse(self, response, n):
        yield {"n": n, "status": response.status, "retries": response.meta.get("retry_times", 0)}

    def failed(self, failure):
        request = failure.request
        yield {"n": request.cb_kwargs.get("n"), "error": type(failure.value).__name__,
               "status": getattr(getattr(failure.value, "response", None), "status", None)}  # fmt: skip
