"""Requests and fingerprints at rest in Redis carry no personal data in the clear."""

import pytest
from scrapy import Request
from scrapy.utils.test import get_crawler
from scrapy_redis import picklecompat
from scrapy_redis.queue import Base

from crawler.scheduling.sealed import SealedSerializer, keyed_fingerprint
from crawler.security import keyring_from_settings
from crawler.security.keyring import KeyRingError

NAME_URL = "http://127.0.0.1:8401/name/jane-doe_springfield-il"


def test_a_queued_request_is_sealed_and_comes_back_whole():
    crawler = get_crawler()
    ring = keyring_from_settings(crawler.settings)
    sealed = SealedSerializer(picklecompat, ring)
    request = Request(NAME_URL, method="POST", body=b"ff=Jane&fl=Doe", meta={"site": "fastpeople"})
    spider = crawler._create_spider("sealed")
    queue = Base(server=None, spider=spider, key="k", serializer=sealed)  # scrapy-redis's own encoding path
    payload = queue._encode_request(request)
    assert b"jane" not in payload.lower() and b"Doe" not in payload
    back = queue._decode_request(payload)
    assert (back.url, back.method, back.body, back.meta["site"]) == (NAME_URL, "POST", b"ff=Jane&fl=Doe", "fastpeople")
    tampered = payload[:-1] + bytes([payload[-1] ^ 1])
    with pytest.raises(KeyRingError):
        queue._decode_request(tampered)


def test_fingerprints_are_keyed():
    crawler = get_crawler()
    ring = keyring_from_settings(crawler.settings)
    fingerprint = crawler.request_fingerprinter.fingerprint(Request(NAME_URL))
    keyed = keyed_fingerprint(ring, fingerprint)
    assert keyed != fingerprint.hex()[: len(keyed)] and len(keyed) == 40
    assert keyed == keyed_fingerprint(ring, fingerprint)  # stable: every worker with the same key agrees
