"""A broker's circuit is its site's: brokers sharing a host do not open each other's circuit."""

from scrapy import Request

from middlewares.circuit_breaker import circuit_key


def test_circuit_key_is_the_site_then_the_host():
    assert circuit_key(Request("http://127.0.0.1:8401/x", meta={"site": "fastpeople"})) == "fastpeople"
    assert circuit_key(Request("http://127.0.0.1:8402/x", meta={"site": "truepeople"})) == "truepeople"
    assert circuit_key(Request("http://127.0.0.1:8402/x", meta={"site": "truepeople", "circuit_key": "k"})) == "k"
    assert circuit_key(Request("http://Example.com:81/x")) == "example.com"
