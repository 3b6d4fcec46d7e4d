"""``python -m crawler.store create-scan``: create a scan from a person read as JSON on stdin.

    echo '{"first_name": "Jane", "last_name": "Doe", "state": "IL", "age": 42,
           "emails": ["jane@example.org"], "phones": ["312-555-0100"]}' |
        python -m crawler.store create-scan [--spider scan] [--sites fastpeople,thatsthem]

The person is validated with the spider's own argument rules, stored encrypted in a new
``pending`` scans row, and the scan id is printed alone on the last line: run it with
``scrapy crawl <spider> -a scan_id=<id>`` or schedule it on scrapyd with only ``scan_id``.
Nothing personal is passed on a command line. Settings as for ``scrapy crawl`` (environment,
or ``-s NAME=VALUE``). Errors are one line naming the field; exit 2 for bad input, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson
import psycopg

from crawler.cli import add_settings_option, project_settings
from crawler.config import ConfigError, validate
from crawler.db.pool import close_pools
from crawler.runtime import check_database
from crawler.security import KeyRingError, keyring_from_settings
from crawler.store.people import InputError, check_person, person_arguments
from crawler.store.scans import create_scan


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.store", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-scan", help="create a pending scan from a person (JSON on stdin)")
    create.add_argument("--spider", default="scan", help="the spider that runs it (default: scan)")
    create.add_argument("--sites", default="", help="site ids, comma-separated (scan spider; default: all enabled)")
    add_settings_option(create)
    args = parser.parse_args(argv)
    settings = project_settings(parser, args.set)
    try:
        try:
            document = orjson.loads(sys.stdin.buffer.read())
        except orjson.JSONDecodeError as exc:
            raise InputError(f"person: not valid JSON on stdin ({exc})") from None
        arguments = person_arguments(document)
        validate(settings)
        parsed = check_person(settings, args.spider, arguments, args.sites.strip() or None)
        check_database(settings)
        keyring_from_settings(settings)
        scan_id = asyncio.run(_create(settings, parsed, args.spider))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyRingError as exc:
        print(f"error: CRAWLER_ENCRYPTION_KEYS: {exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except psycopg.Error as exc:
        print(f"error: DATABASE_URL: the scan was not stored ({type(exc).__name__})", file=sys.stderr)
        return 1
    print(scan_id)
    return 0


async def _create(settings, parsed: dict, spider: str) -> str:
    try:
        return await create_scan(settings, parsed["query"], spider, parsed["site_ids"], parsed["scan_id"])
    finally:
        await close_pools()


if __name__ == "__main__":
    sys.exit(main())
