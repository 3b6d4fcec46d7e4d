"""Pipelines driven directly (no engine) against the real PostgreSQL and Redis."""

import uuid

import pytest
from scrapy import Spider
from scrapy.utils.misc import build_from_crawler
from scrapy.utils.test import get_crawler

from crawler import settings as project_settings
from crawler.db.pool import close_pools
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, REDIS_URL

CHAIN = [
    "pipelines.validate.ValidatePipeline",
    "pipelines.match.MatchPipeline",
    "pipelines.dedup.DedupPipeline",
    "pipelines.screenshots.ScreenshotPipeline",
    "pipelines.encrypt.EncryptPipeline",
    "pipelines.postgres.PostgresPipeline",
]


class Chain:
    """The project's pipeline chain, in settings order, as the engine would run it."""

    def __init__(self, crawler):
        from scrapy.utils.misc import load_object

        self.crawler = crawler
        self.pipelines = [build_from_crawler(load_object(path), crawler) for path in CHAIN]

    async def __aenter__(self):
        for pipeline in self.pipelines:
            if hasattr(pipeline, "open_spider"):
                await pipeline.open_spider()
        return self

    async def __aexit__(self, *exc):
        for pipeline in self.pipelines:
            if hasattr(pipeline, "close_spider"):
                await pipeline.close_spider()
        await close_pools()

    def pipeline(self, name: str):
        """The chain's pipeline of that class name (e.g. "DedupPipeline")."""
        return next(p for p in self.pipelines if type(p).__name__ == name)

    async def push(self, item):
        """The item as it leaves the chain, or the DropItem raised on the way."""
        for pipeline in self.pipelines:
            result = pipeline.process_item(item)
            item = await result if hasattr(result, "__await__") else result
        return item


@pytest.fixture
def make_chain(database_url, tmp_path, redis_prefix):
    def make(redis: bool = False, **overrides) -> Chain:
        values = {k: getattr(project_settings, k) for k in dir(project_settings) if k.isupper()}
        values.update(
            DATABASE_URL=database_url,
            DATA_DIR=str(tmp_path),
            CRAWLER_ENCRYPTION_KEYS=ENCRYPTION_KEYS,
            CRAWLER_BLIND_INDEX_KEY=BLIND_INDEX_KEY,
            REDIS_URL=REDIS_URL if redis else "",
            REDIS_KEY_PREFIX=f"{redis_prefix}{uuid.uuid4().hex[:6]}:",
            PG_FLUSH_SECONDS=60,
            **overrides,
        )
        crawler = get_crawler(Spider, settings_dict=values)
        crawler.spider = Spider(name="pipeline-test")
        return Chain(crawler)

    return make


@pytest.fixture
def scan(db):
    """A scans row for findings to reference, and the directory website."""
    scan_id = str(uuid.uuid4())
    db.execute("INSERT INTO scans (id, spider) VALUES (%s, 'pipeline-test')", (scan_id,))
    db.execute("INSERT INTO websites (id, name, base_url) VALUES ('directory', 'd', 'http://x') ON CONFLICT DO NOTHING")
    return scan_id
