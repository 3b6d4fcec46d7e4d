"""``python -m crawler.db migrate|status``: apply or list schema migrations.

Reads the project settings (environment, or ``-s NAME=VALUE``), so it targets
the same database as ``scrapy crawl``; without DATABASE_URL, the embedded one.
"""

from __future__ import annotations

import argparse
import sys

from scrapy.utils.project import get_project_settings

from crawler.config import ConfigError, validate
from crawler.db.embedded import database_url
from crawler.db.migrate import MigrationError, connect, discover, migrate, pending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.db", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["migrate", "status"])
    parser.add_argument("-s", "--set", action="append", default=[], metavar="NAME=VALUE", help="override a setting")
    args = parser.parse_args(argv)
    settings = get_project_settings()
    for assignment in args.set:
        name, sep, value = assignment.partition("=")
        if not sep:
            parser.error(f"-s {assignment!r}: expected NAME=VALUE")
        settings.set(name, value, priority="cmdline")
    try:
        validate(settings)
        with connect(database_url(settings), settings.getfloat("PG_CONNECT_TIMEOUT")) as conn:
            if args.command == "status":
                todo = pending(conn)
                done = [m for m in discover() if m not in todo]
                for migration in done:
                    print(f"applied  {migration}")
                for migration in todo:
                    print(f"pending  {migration}")
                return 0
            applied = migrate(conn)
    except (ConfigError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if applied:
        print(f"applied {len(applied)} migration(s): {', '.join(map(str, applied))}")
    else:
        print("schema is up to date; nothing to apply")
    return 0


if __name__ == "__main__":
    sys.exit(main())
