"""``python -m crawler.api``: the scans API and its page on uvicorn (``API_HOST``:``API_PORT``).

    python -m crawler.api                              # serve
    python -m crawler.api keys create --user NAME      # a new key, printed once, alone on the last line
    python -m crawler.api keys list [--user NAME]      # user, prefix, created, last used, revoked
    python -m crawler.api keys revoke PREFIX_OR_ID

Settings as for ``scrapy crawl`` (environment, or ``-s NAME=VALUE``). Keys are stored as a sha256:
a lost key cannot be shown again, only revoked and replaced.
"""

from __future__ import annotations

import argparse
import sys

from crawler.cli import add_settings_option, project_settings
from crawler.config import ConfigError, validate
from crawler.runtime import check_database
from crawler.store import keys


def serve(settings) -> int:
    import uvicorn

    from crawler.api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.get("API_HOST"),
        port=settings.getint("API_PORT"),
        log_level=(settings.get("LOG_LEVEL") or "INFO").lower(),
        proxy_headers=False,
    )
    return 0


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S%z") if value is not None else "-"


def keys_command(settings, args) -> int:
    if args.keys_command == "create":
        key = keys.create_key(settings, args.user)
        print(f"API key for {args.user} (shown once; stored as a hash):", file=sys.stderr)
        print(key)
    elif args.keys_command == "list":
        rows = keys.list_keys(settings, args.user)
        print(f"{'id':36}  {'user':20}  {'prefix':12}  {'created':24}  {'last used':24}  revoked")
        for k in rows:
            print(
                f"{k.id:36}  {k.user:20}  {k.prefix:12}  {_when(k.created_at):24}  "
                f"{_when(k.last_used_at):24}  {_when(k.revoked_at)}"
            )
    else:
        if keys.revoke_key(settings, args.key) == 0:
            print("error: no key with that prefix or id", file=sys.stderr)
            return 1
        print("revoked")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.api", description=__doc__.splitlines()[0])
    add_settings_option(parser)
    commands = parser.add_subparsers(dest="command")
    key_parser = commands.add_parser("keys", help="manage API keys")
    key_commands = key_parser.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key for a user; prints it once")
    create.add_argument("--user", required=True)
    listing = key_commands.add_parser("list", help="list keys (never the keys themselves)")
    listing.add_argument("--user", default=None)
    revoke = key_commands.add_parser("revoke", help="revoke a key by its prefix or id")
    revoke.add_argument("key", metavar="PREFIX_OR_ID")
    args = parser.parse_args(argv)
    settings = project_settings(parser, args.set)
    try:
        validate(settings)
        check_database(settings)  # the embedded database is migrated; an external one must be current
        if args.command == "keys":
            return keys_command(settings, args)
        return serve(settings)
    except keys.ApiKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
