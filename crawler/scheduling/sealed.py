"""Requests at rest in Redis are sealed, like every other personal datum.

A broker search URL carries a name (``/name/john-smith_chicago-il``), a form body
the city, a page action the e-mail typed in: the shared queue must not hold them
in the clear. ``SealedSerializer`` wraps the queue's serializer (scrapy-redis's
pickle by default) with the key ring's AES-256-GCM; the dupefilter keeps keyed
HMACs of the fingerprints (the blind-index key), not bare SHA-1s that a list of
common names would reverse. Every worker of a job needs the same keys, as it
does to write findings.
"""

from __future__ import annotations

from crawler.security import keyring_from_settings
from crawler.security.keyring import KeyRing

AAD = b"scheduler|request"


class SealedSerializer:
    def __init__(self, inner, ring: KeyRing):
        self.inner = inner
        self.ring = ring

    @classmethod
    def for_settings(cls, inner, settings) -> SealedSerializer:
        return cls(inner, keyring_from_settings(settings))

    def dumps(self, obj) -> bytes:
        payload = self.inner.dumps(obj)
        return self.ring.encrypt(payload if isinstance(payload, bytes) else payload.encode(), AAD)

    def loads(self, data: bytes):
        return self.inner.loads(self.ring.decrypt(data, AAD))


def keyed_fingerprint(ring: KeyRing, fingerprint: bytes) -> str:
    """The dupefilter's member: an HMAC of the request fingerprint under the blind-index key."""
    return ring.keyed_digest(fingerprint).hex()[:40]
