"""``scrapy crawl`` with fail-fast checks before the reactor starts.

A bad setting or an unreachable database prints one line naming it and exits 1;
a missing or malformed spider argument prints one line naming the argument and
exits 2. Nothing is crawled in either case.
"""

from __future__ import annotations

import inspect
import sys

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.spiderloader import get_spider_loader

from crawler.config import ConfigError
from crawler.runtime import preflight
from crawler.spider_args import SpiderArgumentError


class Command(ScrapyCrawlCommand):
    def process_options(self, args, opts) -> None:
        super().process_options(args, opts)
        try:
            if args:
                self._check_spider_arguments(args[0], opts.spargs)
            preflight(self.settings)
        except SpiderArgumentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except ConfigError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(1)

    def _check_spider_arguments(self, name: str, spargs: dict) -> None:
        try:
            spidercls = get_spider_loader(self.settings).load(name)
        except KeyError:
            return  # Scrapy's own "Spider not found" message follows in run()
        check = getattr(spidercls, "check_arguments", None)
        if check is not None:
            # spiders whose arguments can also come from settings take them as a second argument
            if "settings" in inspect.signature(check).parameters:
                check(spargs, self.settings)
            else:
                check(spargs)
