"""The database URL: DATABASE_URL when set, else an embedded PostgreSQL under DATA_DIR.

The embedded server (the ``pgserver`` package: a PostgreSQL build in a wheel)
lets a first run work with no database server. Its data lives in
``<DATA_DIR>/postgres``; it is stopped when the last process using it exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)

EMBEDDED_DATABASE = "crawler"
_servers: dict[Path, object] = {}


def embedded_url(data_dir: str | Path) -> str:
    """Start (or join) the embedded server and return a URL to its ``crawler`` database."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here
        warnings.simplefilter("ignore")
        import pgserver  # only needed without DATABASE_URL

    pgdata = (Path(data_dir) / "postgres").resolve()
    server = _servers.get(pgdata)
    if server is None:
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(pgdata, cleanup_mode="stop")
        exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';")
        if "(0 rows)" in exists:
            server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
        _servers[pgdata] = server
        logger.info("DATABASE_URL unset: using the embedded PostgreSQL in %s", pgdata)
    return server.get_uri(EMBEDDED_DATABASE)


def database_url(settings) -> str:
    """The URL every component connects to (resolves the embedded default once per process)."""
    return settings.get("DATABASE_URL") or embedded_url(settings.get("DATA_DIR") or ".data")
