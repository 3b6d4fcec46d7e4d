"""A spider fed from the Redis start key (RedisStartMixin), for the scheduling tests."""

import scrapy

from crawler.scheduling.spiders import RedisStartMixin


class LabFeedSpider(RedisStartMixin, scrapy.Spider):
    """Start requests from the Redis start key; records the order pages were parsed in."""

    name = "lab_feed"
    custom_settings = {"ITEM_PIPELINES": {}, "CONCURRENT_REQUESTS": 1}

    def parse(self, response):
        yield {
            "path": response.url.rsplit("/", 2)[-2] + "/" + response.url.rsplit("/", 1)[-1],
            "priority": response.request.priority,
        }
