import io
import json
import logging

import pytest
from scrapy.settings import Settings

from crawler import settings as project_settings
from crawler.items import PersonListing
from crawler.observability import logs
from crawler.observability.logs import MASK, PrivacyLogFormatter, Redactor, install_logging


@pytest.fixture
def redactor():
    return Redactor(redact_urls=True)


@pytest.mark.parametrize(
    "text",
    [
        "contact jane.doe+x@mail.example.org now",
        "call (217) 555-0123 today",
        "call 217-555-0123 today",
        "call +1 217.555.0123 today",
        "raw 2175550123 digits",
    ],
)
def test_emails_and_phones_are_masked(redactor, text):
    out = redactor.text(text)
    assert MASK in out
    assert "555" not in out and "@" not in out


def test_long_numbers_and_timestamps_survive(redactor):
    text = "epoch 1732423423000 took 0.25s, 12 items, status 200"
    assert redactor.text(text) == text


def test_known_fields_in_dicts_json_and_key_value(redactor):
    text = "{'first_name': 'Jane', 'age': 41, \"city\": \"Springfield\"} last_name=Doe phones=['a', 'b']"
    out = redactor.text(text)
    for value in ("Jane", "Springfield", "Doe", "'a'"):
        assert value not in out
    assert "'age': 41" in out
    assert redactor.text("hostname=db1") == "hostname=db1"


def test_secrets_and_url_credentials(redactor):
    out = redactor.text("{'OPENAI_API_KEY': 'sk-123', 'DATABASE_URL': 'postgresql://u:pw@db:5432/x'}")
    assert "sk-123" not in out and ":pw@" not in out
    assert "postgresql://u:***@db:5432" in out


def test_url_paths_become_stable_hashes(redactor):
    first = redactor.text("GET http://127.0.0.1:8100/name/jane-doe_springfield-il?page=2")
    referer = redactor.text("(referer: http://127.0.0.1:8100/name/jane-doe_springfield-il?page=2)")
    assert referer.endswith(")") and first.split()[-1] in referer
    assert "jane" not in first and first.startswith("GET http://127.0.0.1:8100/~")
    assert first == redactor.text("GET http://127.0.0.1:8100/name/jane-doe_springfield-il?page=2")
    assert Redactor(redact_urls=False).text("http://h/events?limit=5") == "http://h/events?limit=5"


def test_registered_values_are_masked_in_any_form(redactor):
    redactor.register("Jane", "Doe", "jane@x.example", None)
    out = redactor.text("searching JANE doe, slug jane-doe_il, Jane_Doe; Janet is someone else")
    assert "jane" not in out.lower().replace("janet", "") and "doe" not in out.lower()
    assert "Janet" in out


def capture(settings_overrides=None):
    settings = Settings()
    settings.setmodule(project_settings)
    settings.update({"LOG_LEVEL": "DEBUG", **(settings_overrides or {})})
    handler = install_logging(settings)
    stream = io.StringIO()
    handler.setStream(stream)
    return stream


def test_handler_redacts_message_args_extras_and_exceptions():
    stream = capture()
    log = logging.getLogger("test.redaction")
    log.info("found %s", "jane@example.com", extra={"phone": "217-555-0123", "site": "directory"})
    try:
        raise ValueError("bad email bob@example.net")
    except ValueError:
        log.exception("failed for %(email)s", {"email": "bob@example.net"})
    out = stream.getvalue()
    assert "example.com" not in out and "bob@" not in out
    assert "ValueError: bad email [redacted]" in out


def test_json_lines_with_extras():
    stream = capture({"LOG_FORMAT": "json"})
    logging.getLogger("test.json").warning("scan %s done", "s1", extra={"site": "directory", "email": "a@b.example"})
    entry = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert entry["message"] == "scan s1 done" and entry["level"] == "WARNING"
    assert entry["site"] == "directory" and entry["email"] == MASK
    assert entry["logger"] == "test.json" and entry["time"].endswith("+00:00")


def test_log_file_and_disabled_logging(tmp_path):
    handler = install_logging(Settings({"LOG_FILE": str(tmp_path / "x.log"), "LOG_LEVEL": "INFO"}))
    logging.getLogger("test.file").info("to the file: a@b.example")
    handler.flush()
    assert "[redacted]" in (tmp_path / "x.log").read_text()
    replacement = install_logging(Settings({"LOG_ENABLED": False}))
    assert isinstance(replacement, logging.NullHandler)
    assert replacement in logging.getLogger().handlers and handler not in logging.getLogger().handlers


def test_scrapy_item_lines_carry_no_item_content():
    item = PersonListing(site="s", scan_id="1", listing_url="http://h/p/1", full_name="Jane Doe")
    line = PrivacyLogFormatter().scraped(item, None, None)
    assert "Jane" not in (line["msg"] % line["args"])
    assert "<PersonListing>" in line["msg"] % line["args"]


def test_register_pii_reaches_the_shared_redactor():
    logs.register_pii("Zebulon")
    assert "Zebulon" not in logs.redactor.text("hello Zebulon")
