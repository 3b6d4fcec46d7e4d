import uuid

import pytest
from scrapy.settings import Settings
from scrapy.utils.misc import load_object
from scrapy.utils.test import get_crawler

from crawler.spider_args import SpiderArgumentError, parse_http_url, parse_person, parse_scan_id


def test_a_full_person_is_normalised():
    query = parse_person(
        {
            "first_name": " Jane ",
            "last_name": "O'Neil-Doe",
            "state": "il",
            "age": "41",
            "email": "Jane@Example.COM",
            "phone": "(217) 555-0123",
            "city": "St. Louis",
        }
    )
    assert query.full_name == "Jane O'Neil-Doe"
    assert (query.state, query.age, query.email, query.phone) == ("IL", 41, "jane@example.com", "+12175550123")
    assert "IL" not in query.pii_values() and "Jane" in query.pii_values()


@pytest.mark.parametrize(
    ("region", "phone", "e164"),
    [("GB", "020 7946 0018", "+442079460018"), ("US", "(217) 555-0123", "+12175550123")],
)
def test_a_national_phone_is_read_in_the_validate_phone_region(region, phone, e164):
    settings = Settings({"VALIDATE_PHONE_REGION": region})
    assert parse_person({"first_name": "Jane", "last_name": "Doe", "phone": phone}, settings).phone == e164


def test_a_phone_with_its_country_code_ignores_the_region():
    kwargs = {"first_name": "Jane", "last_name": "Doe", "phone": "+1 217 555 0123"}
    assert parse_person(kwargs, Settings({"VALIDATE_PHONE_REGION": "GB"})).phone == "+12175550123"


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"last_name": "Doe"}, "first_name"),
        ({"first_name": "Jane"}, "last_name"),
        ({"first_name": "J4ne", "last_name": "Doe"}, "first_name"),
        ({"first_name": "Jane", "last_name": "Doe", "state": "XX"}, "state"),
        ({"first_name": "Jane", "last_name": "Doe", "age": "7"}, "age"),
        ({"first_name": "Jane", "last_name": "Doe", "email": "jane@"}, "email"),
        ({"first_name": "Jane", "last_name": "Doe", "phone": "12"}, "phone"),
    ],
)
def test_errors_name_the_argument_without_echoing_personal_values(kwargs, argument):
    with pytest.raises(SpiderArgumentError) as error:
        parse_person(kwargs)
    assert str(error.value).startswith(f"-a {argument}: ")
    assert error.value.argument == argument
    for value in kwargs.values():
        if value not in ("Doe", "Jane"):
            assert value not in str(error.value)


def test_scan_id_and_urls():
    assert uuid.UUID(parse_scan_id({}))
    fixed = str(uuid.uuid4())
    assert parse_scan_id({"scan_id": fixed.upper()}) == fixed
    with pytest.raises(SpiderArgumentError, match="scan_id"):
        parse_scan_id({"scan_id": "nope"})
    assert parse_http_url({}, "base_url", "http://h:1/") == "http://h:1"
    assert parse_http_url({}, "base_url") == ""
    with pytest.raises(SpiderArgumentError, match="base_url"):
        parse_http_url({"base_url": "ftp://x"}, "base_url")


@pytest.mark.parametrize("spider", ["spiders.scan.ScanSpider", "spiders.example.ExampleSpider"])
def test_spiders_read_the_phone_region_from_their_settings(spider):
    spidercls = load_object(spider)
    crawler = get_crawler(spidercls, {"VALIDATE_PHONE_REGION": "GB", "EXAMPLE_BASE_URL": "http://127.0.0.1:9"})
    made = spidercls.from_crawler(crawler, first_name="Jane", last_name="Doe", phone="020 7946 0018")
    assert made.scan.query.phone == "+442079460018"
