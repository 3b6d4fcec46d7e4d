"""``python -m crawler.db migrate|status|psql``: apply or list schema migrations, or open psql.

Reads the project settings (environment, or ``-s NAME=VALUE``), so it targets
the same database as ``scrapy crawl``; without DATABASE_URL, the embedded one.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from crawler.cli import add_settings_option, project_settings
from crawler.config import ConfigError, validate
from crawler.db.embedded import database_url
from crawler.db.migrate import MigrationError, connect, discover, migrate, pending


def psql_binary() -> str:
    """The system psql, else the one bundled with the embedded server."""
    if found := shutil.which("psql"):
        return found
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.db", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["migrate", "status", "psql"])
    add_settings_option(parser)
    args, psql_args = parser.parse_known_args(argv)
    if psql_args and args.command != "psql":
        parser.error(f"unrecognized arguments: {' '.join(psql_args)}")
    settings = project_settings(parser, args.set)
    try:
        validate(settings)
        url = database_url(settings)
        with connect(url, settings.getfloat("PG_CONNECT_TIMEOUT")) as conn:
            if args.command == "psql":
                # the embedded server stays up while this process (and psql) runs
                return subprocess.call([psql_binary(), url, *psql_args])
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
