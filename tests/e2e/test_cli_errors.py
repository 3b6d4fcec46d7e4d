"""Fail-fast start-up: one line naming what is wrong, a non-zero exit, nothing crawled."""

import subprocess
import sys

import pytest

from support import ROOT, create_database, drop_database

ARGS = ["crawl", "example", "-a", "first_name=Jane", "-a", "last_name=Doe"]


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_unreachable_database_url(scrapy_cmd, crawl_env):
    crawl_env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/x"
    result = scrapy_cmd(ARGS, crawl_env)
    assert result.returncode == 1
    assert error_lines(result) == [
        "error: DATABASE_URL: cannot connect to postgresql://nobody@127.0.0.1:1/x: connection failed: "
        'connection to server at "127.0.0.1", port 1 failed: Connection refused'
    ]
    assert "Traceback" not in result.stderr and "Spider opened" not in result.stderr


@pytest.mark.parametrize(
    ("setting", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://db/x", "error: DATABASE_URL: scheme must be postgresql://"),
        ("CRAWLER_ENCRYPTION_KEYS", "k1:c2hvcnQ=", "error: CRAWLER_ENCRYPTION_KEYS: entry 1 ('k1'): key is 5 bytes"),
        ("REDIS_URL", "redis://127.0.0.1:1/0", "error: REDIS_URL: cannot connect to redis://127.0.0.1:1/0"),
        ("LOG_FORMAT", "xml", "error: LOG_FORMAT: expected 'text' or 'json'"),
    ],
)
def test_bad_settings_from_environment_or_command_line(scrapy_cmd, crawl_env, setting, value, expected):
    from_env = scrapy_cmd(ARGS, {**crawl_env, setting: value})
    from_cli = scrapy_cmd([*ARGS, "-s", f"{setting}={value}"], crawl_env)
    for result in (from_env, from_cli):
        assert result.returncode == 1
        assert len(error_lines(result)) == 1 and error_lines(result)[0].startswith(expected)
        assert "Traceback" not in result.stderr


def test_command_line_setting_overrides_the_environment(scrapy_cmd, crawl_env, database_url):
    crawl_env["DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/x"
    result = scrapy_cmd([*ARGS, "-a", "base_url=http://127.0.0.1:9", "-s", f"DATABASE_URL={database_url}"], crawl_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "DATABASE_URL" not in "".join(error_lines(result))


def test_bad_spider_argument(scrapy_cmd, crawl_env):
    result = scrapy_cmd([*ARGS[:-2], "-a", "age=old"], crawl_env)
    assert result.returncode == 2
    assert error_lines(result) == ["error: -a last_name: required"]
    result = scrapy_cmd([*ARGS, "-a", "age=old"], crawl_env)
    assert error_lines(result) == ["error: -a age: expected a whole number from 18 to 120"]


def test_list_shows_the_spiders(scrapy_cmd, crawl_env):
    result = scrapy_cmd(["list"], crawl_env)
    assert result.returncode == 0 and "example" in result.stdout.split()


@pytest.mark.parametrize("command", [["crawler.api", "keys", "list"], ["crawler.worker"]])
def test_the_service_refuses_a_database_that_is_not_migrated(crawl_env, command):
    name, url = create_database(migrated=False)
    try:
        env = dict(crawl_env, DATABASE_URL=url)
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        drop_database(name)
    assert result.returncode == 1
    [line] = error_lines(result)
    assert line.startswith("error: DATABASE_URL: schema is behind (0001_initial,")
    assert line.endswith("pending); run `python -m crawler.db migrate`")
    assert "Traceback" not in result.stderr
