"""Constants and helpers shared by the tests (imported as ``support``)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# Fixed test keys: tests can decrypt what crawls wrote.
ENCRYPTION_KEYS = ",".join(f"test{n}:" + base64.b64encode(bytes([n]) * 32).decode() for n in (2, 1))
BLIND_INDEX_KEY = base64.b64encode(b"B" * 32).decode()


def url_for(database: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


SCRAPY = [sys.executable, "-m", "scrapy"]


def options(arguments: dict, settings: dict | None = None) -> list[str]:
    """``-a name=value`` for each spider argument, then ``-s NAME=VALUE`` for each setting."""
    pairs = [("-a", f"{k}={v}") for k, v in arguments.items()]
    pairs += [("-s", f"{k}={v}") for k, v in (settings or {}).items()]
    return [part for pair in pairs for part in pair]


def run_scrapy(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """`scrapy <args>` from the repository root, as a user would run it."""
    return subprocess.run(
        [*SCRAPY, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def crawl_keyring():
    """The key ring the tests' crawls encrypt with."""
    from crawler.security.keyring import KeyRing, parse_blind_index_key, parse_encryption_keys

    return KeyRing(parse_encryption_keys(ENCRYPTION_KEYS), parse_blind_index_key(BLIND_INDEX_KEY))


def create_database(migrated: bool = True) -> tuple[str, str]:
    """(name, URL) of a new throwaway database, migrated with the real CLI."""
    name = f"crawler_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_for(name)
    if migrated:
        result = subprocess.run(
            [sys.executable, "-m", "crawler.db", "migrate", "-s", f"DATABASE_URL={url}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
    return name, url


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Reply:
    """An HTTP answer, whatever its status (4xx and 5xx included)."""

    def __init__(self, status: int, headers, body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)


def http(
    url: str, *, params: dict | None = None, data=None, form=None, headers: dict | None = None, timeout: float = 10
) -> Reply:
    """GET ``url`` (with ``params``), or POST ``data`` as JSON or ``form`` (a dict or
    (name, value) pairs, for repeated names) as a form."""
    if params:
        url += "?" + urllib.parse.urlencode(params)
    headers = dict(headers or {})
    body = None
    if data is not None:
        body, headers["Content-Type"] = json.dumps(data).encode(), "application/json"
    elif form is not None:
        body, headers["Content-Type"] = urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


def run_create_scan(env: dict, person, *options: str) -> subprocess.CompletedProcess:
    """`python -m crawler.store create-scan [options]` with the person (a dict, or raw text) on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "crawler.store", "create-scan", *options],
        cwd=ROOT,
        env=env,
        input=person if isinstance(person, str) else json.dumps(person),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def created_scan_id(env: dict, person, *options: str) -> str:
    """The id of a pending scan made by `create-scan` (alone on its last line)."""
    result = run_create_scan(env, person, *options)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip().splitlines()[-1]


def store_settings(database_url: str, data_dir):
    """The project's settings on the test database and keys, for calling crawler.store in process."""
    from scrapy.settings import Settings

    import crawler.settings

    settings = Settings()
    settings.setmodule(crawler.settings)
    settings.setdict(
        {
            "DATABASE_URL": database_url,
            "DATA_DIR": str(data_dir),
            "CRAWLER_ENCRYPTION_KEYS": ENCRYPTION_KEYS,
            "CRAWLER_BLIND_INDEX_KEY": BLIND_INDEX_KEY,
        }
    )
    return settings


class Clock:
    """Seconds, like time.time, that move only by ``advance``."""

    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += ms / 1000
