import pytest
from scrapy.settings import Settings

from crawler import settings as project_settings
from crawler.config import ConfigError, flag, redact_url, validate


def settings(**overrides):
    values = Settings()
    values.setmodule(project_settings)
    values.update(overrides)
    return values


def test_project_defaults_are_valid():
    validate(settings())


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DATABASE_URL", "mysql://h/db", "scheme must be postgresql://"),
        ("DATABASE_URL", "postgresql://h:notaport/db", "malformed URL"),
        ("DATABASE_URL", "postgresql://u@h:0/db", "port 0"),
        ("REDIS_URL", "http://localhost", "scheme must be redis://"),
        ("REDIS_URL", "redis://:6379", "no host"),
        ("REDIS_URL", "redis://localhost/abc", "database must be a number"),
        ("OPENAI_BASE_URL", "localhost:8000", r"expected an http\(s\)://"),
        ("CRAWLER_ENCRYPTION_KEYS", "k1:AAAA", "3 bytes, AES-256 needs 32"),
        ("CRAWLER_BLIND_INDEX_KEY", "AAAA", "3 bytes"),
        ("LOG_FORMAT", "yaml", "expected 'text' or 'json'"),
        ("LOG_LEVEL", "LOUD", "expected one of"),
        ("PG_BATCH_ROWS", "many", "expected an integer"),
        ("PG_FLUSH_SECONDS", "-1", "must be positive"),
        ("PG_POOL_MIN_SIZE", "9", "must not exceed PG_POOL_MAX_SIZE"),
        ("LOG_REDACT_URLS", "maybe", "expected true or false"),
    ],
)
def test_bad_values_name_the_setting_and_the_reason(name, value, message):
    with pytest.raises(ConfigError, match=message) as error:
        validate(settings(**{name: value}))
    assert str(error.value).startswith(f"{name}: ")
    assert "\n" not in str(error.value)


def test_errors_never_show_a_password():
    with pytest.raises(ConfigError) as error:
        validate(settings(DATABASE_URL="postgresql://u:s3cret@h:notaport/db"))
    assert "s3cret" not in str(error.value)
    assert redact_url("redis://u:pw@h:1/0") == "redis://u:***@h:1/0"


def test_custom_text_log_format_and_flags():
    validate(settings(LOG_FORMAT="%(levelname)s %(message)s"))
    assert flag(settings(LOG_REDACT_URLS="yes"), "LOG_REDACT_URLS")
    assert not flag(settings(LOG_REDACT_URLS="0"), "LOG_REDACT_URLS")
