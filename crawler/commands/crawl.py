"""``scrapy crawl`` with fail-fast checks before the reactor starts.

A bad setting or an unreachable database prints one line naming it and exits 1;
a missing or malformed spider argument prints one line naming the argument and
exits 2 (``-a scan_id`` alone is checked after the database, since the scan is read from it).
Nothing is crawled in either case. A crawl that ends for a reason other
than finishing (or a requested shutdown / CloseSpider limit), such as an API
refusing the key or a failing ``start()``, prints that reason and exits 1.
A first SIGTERM / SIGINT drains the crawl and exits 0 (reason "shutdown"); a
second one stops at once and exits 1 (see crawler/observability/shutdown.py).
"""

from __future__ import annotations

import hashlib
import inspect
import sys

import orjson
from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.spiderloader import get_spider_loader

from crawler.config import ConfigError
from crawler.runtime import preflight
from crawler.spider_args import SpiderArgumentError, wants_stored_scan

NORMAL_ENDINGS = ("finished", "shutdown", "closespider_")


def arguments_digest(spargs: dict) -> str:
    """Names the shared-scheduler job of this crawl (crawler/scheduling/shared.py: job_id): the same
    spider arguments give the same job. scrapyd's own ``_job`` id and the priority do not count."""
    if "job_priority" in spargs and not str(spargs["job_priority"]).strip().lstrip("-").isdigit():
        raise SpiderArgumentError("job_priority", "expected a whole number")
    arguments = {k: v for k, v in spargs.items() if not k.startswith("_") and k != "job_priority"}
    if not arguments:
        return ""
    return hashlib.sha256(orjson.dumps(arguments, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[:12]


class Command(ScrapyCrawlCommand):
    def run(self, args, opts) -> None:
        if len(args) != 1:
            return super().run(args, opts)
        crawler = self._create_crawler(args[0])
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
            return None
        reason = str(crawler.stats.get_value("finish_reason") or "")
        if not reason and crawler.stats.get_value("start_time") is not None:
            # the spider never closed: a second SIGTERM / SIGINT stopped the reactor at once
            print(
                f"error: {args[0]} stopped at once: buffered rows were not written, leases are left to expire",
                file=sys.stderr,
            )
            self.exitcode = 1
        elif reason and not reason.startswith(NORMAL_ENDINGS):
            print(f"error: {args[0]} stopped: {reason}", file=sys.stderr)
            self.exitcode = 1
        return None

    def process_options(self, args, opts) -> None:
        super().process_options(args, opts)
        try:
            # a stored scan (-a scan_id alone) is read from the database: checked once it is reachable
            stored = wants_stored_scan(opts.spargs)
            if args and not stored:
                self._check_spider_arguments(args[0], opts.spargs)
            preflight(self.settings)
            if args and stored:
                self._check_spider_arguments(args[0], opts.spargs)
            if args:
                self.settings.set("SCHEDULER_JOB_ARGUMENTS", arguments_digest(opts.spargs), priority="cmdline")
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
