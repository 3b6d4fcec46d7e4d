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


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("REDIS_CONNECT_TIMEOUT", "0", "must be positive"),
        ("SCHEDULER_BLOOM_ERROR_RATE", "1", r"between 0 and 1 \(exclusive\)"),
        ("MATCH_THRESHOLD", "nan", "expected a finite number"),
        ("MATCH_AGE_TOLERANCE", "-1", "must be >= 0"),
        ("SCHEDULER_IDLE_CLOSE_SECONDS", "-0.5", "must be >= 0"),
        ("SCHEDULER_JOB_PRIORITY", "1.5", "expected an integer"),
        ("PLAYWRIGHT_MAX_CONTEXTS", "0", "must be >= 1"),
        ("SCHEDULER_PERSIST", "2", "expected true or false"),
        ("AUTH_TOKEN_URL", "ftp://h/token", r"expected an http\(s\)://"),
        ("RATELIMIT_SITES", "a.example=fast", "expected JSON"),
        ("RATELIMIT_SITES", "a.example=0", "rates must be positive"),
        ("SITES_BASE_URLS", "fastpeople=localhost:8101", r"fastpeople: expected an http\(s\)://"),
        ("METRICS_PORT", "9410-90000", "expected ports in 1-65535"),
        ("VALIDATE_PHONE_REGION", "us", "region code"),
    ],
)
def test_declared_kinds_ranges_and_checks(name, value, message):
    with pytest.raises(ConfigError, match=message) as error:
        validate(settings(**{name: value}))
    assert str(error.value).startswith(f"{name}: ")
    assert "\n" not in str(error.value)


def test_good_values_of_each_kind_pass():
    validate(
        settings(
            SCHEDULER_JOB_PRIORITY="-3",
            SCHEDULER_PERSIST="yes",
            RATELIMIT_SITES='{"a.example": 0.5}',
            SITES_BASE_URLS="fastpeople=http://127.0.0.1:8101,spa=http://127.0.0.1:8104/",
            METRICS_PORT="9410-9419",
            VALIDATE_PHONE_REGION="GB",
            LOG_LEVEL="debug",
            PG_POOL_MIN_SIZE=4,  # -s values are strings, code may pass numbers
        )
    )


def test_secrets_are_never_echoed():
    with pytest.raises(ConfigError) as error:
        validate(settings(CRAWLER_ENCRYPTION_KEYS="k1:c2VjcmV0"))
    assert "c2VjcmV0" not in str(error.value)
    from crawler.setting import Setting

    secret = Setting("SOME_TOKEN", "int", "1", "a numeric secret", secret=True)
    with pytest.raises(ConfigError, match="<hidden>") as error:
        secret.validate("hunter2")
    assert "hunter2" not in str(error.value)
