"""A small spider for the scheduling tests (run with `scrapy runspider`).

Crawls the lab's page tree (page/n links to page/3n+1..3n+3) below ``-a limit=N``
and stores one ``events`` row per page (id ``<tenant>:<n>``) through the
project's Postgres pipeline, so a test can count what reached the database.
"""

import re
from datetime import UTC, datetime

import scrapy

from crawler.items import TableRows

COLUMNS = ("id", "type", "occurred_at", "payload", "source")


class LabTreeSpider(scrapy.Spider):
    name = "lab_tree"
    custom_settings = {"ITEM_PIPELINES": {"pipelines.postgres.PostgresPipeline": 800}}

    def __init__(self, base: str = "", limit: str = "100", roots: str = "0", **kwargs):
        super().__init__(**kwargs)
        self.base = base.rstrip("/")
        self.limit = int(limit)
        self.roots = [int(n) for n in roots.split(",")]
        self.tenant = self.base.rsplit("/", 1)[-1]

    async def start(self):
        for n in self.roots:
            yield scrapy.Request(f"{self.base}/page/{n}", cb_kwargs={"n": n})

    def parse(self, response, n):
        yield TableRows(
            "events",
            COLUMNS,
            [(f"{self.tenant}:{n}", "lab_page", datetime.now(UTC), f'{{"n": {n}}}', f"lab:{self.tenant}")],
            source="lab",
        )
        for href in response.css("a::attr(href)").getall():
            child = int(re.search(r"(\d+)$", href).group(1))
            if child < self.limit:
                yield scrapy.Request(f"{self.base}/page/{child}", cb_kwargs={"n": child})
