"""A throwaway database for a bench: created and migrated with the real CLI, dropped afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def fresh_database(prefix: str) -> tuple[str, str]:
    """(name, URL) of a new migrated database on TEST_DATABASE_URL's server."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "-m", "crawler.db", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    return name, url


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
