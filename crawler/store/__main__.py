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
from scrapy.spiderloader import get_spider_loader

from crawler.cli import add_settings_option, project_settings
from crawler.config import ConfigError, validate
from crawler.db.pool import close_pools
from crawler.runtime import check_database
from crawler.security import KeyRingError, keyring_from_settings
from crawler.spider_args import PERSONAL_ARGUMENTS, SpiderArgumentError
from crawler.store.scans import create_scan

# JSON field -> spider argument; a list holds at most one value while the matcher compares one
LIST_FIELDS = {"emails": "email", "phones": "phone"}
FIELDS = (*PERSONAL_ARGUMENTS, *LIST_FIELDS)


class InputError(ValueError):
    pass


def person_arguments(document) -> dict[str, str]:
    """The spider arguments (strings) of the person JSON; InputError names the field."""
    if not isinstance(document, dict):
        raise InputError("person: expected a JSON object")
    if unknown := sorted(set(document) - set(FIELDS)):
        raise InputError(f"{unknown[0]}: unknown field (known: {', '.join(FIELDS)})")
    arguments = {}
    for key, value in document.items():
        if value is None:
            continue
        if key in LIST_FIELDS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise InputError(f"{key}: expected a list of strings")
            if len(value) > 1:
                raise InputError(f"{key}: at most one value for now")
            target = LIST_FIELDS[key]
            if value:
                if target in arguments:
                    raise InputError(f"{key}: give {key} or {target}, not both")
                arguments[target] = value[0]
            continue
        if key == "age" and isinstance(value, int) and not isinstance(value, bool):
            text = str(value)
        elif isinstance(value, str):
            text = value
        else:
            raise InputError(f"{key}: expected a string" + (" or a whole number" if key == "age" else ""))
        if key in arguments:
            raise InputError(f"{key}: give {key} or {key}s, not both")
        arguments[key] = text
    return arguments


def check_person(settings, spider: str, arguments: dict[str, str], sites: str | None) -> dict:
    """The spider's parsed arguments for this person (the same rules as ``-a``)."""
    try:
        spidercls = get_spider_loader(settings).load(spider)
    except KeyError:
        raise InputError(f"--spider: unknown spider {spider!r}") from None
    if not getattr(spidercls, "takes_person", False):
        raise InputError(f"--spider: {spider!r} does not take a person")
    kwargs = dict(arguments)
    if sites:
        if not getattr(spidercls, "runs_all_sites", False):
            raise InputError(f"--sites: {spider!r} runs one site; --sites is for the scan spider")
        kwargs["sites"] = sites
    try:
        parsed = spidercls.check_arguments(kwargs, settings)
    except SpiderArgumentError as exc:
        raise InputError(f"{exc.argument}: {str(exc).split(': ', 1)[1]}") from None
    parsed["site_ids"] = list(parsed["sites"]) if "sites" in parsed else [getattr(spidercls, "site_id", spider)]
    return parsed


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
