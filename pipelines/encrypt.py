"""Seals personal data: a PersonListing becomes encrypted ``findings`` rows.

Each value is AES-256-GCM encrypted with associated data binding it to its
scan and data type, and blind-indexed (HMAC) so equality and dedup work
without decrypting. After this pipeline no clear personal value travels on.
"""

from __future__ import annotations

from crawler.items import PersonListing, TableRows
from crawler.security import keyring_from_settings

FINDING_COLUMNS = (
    "scan_id", "website_id", "data_type", "value_ciphertext", "value_index",
    "listing_url_ciphertext", "listing_url_index", "key_id", "confidence", "screenshot_sha256",
)  # fmt: skip


def value_aad(scan_id: str, data_type: str) -> bytes:
    return f"finding|{scan_id}|{data_type}".encode()


def listing_url_aad(scan_id: str) -> bytes:
    return f"finding|{scan_id}|listing_url".encode()


class EncryptPipeline:
    def __init__(self, keyring, stats):
        self.keyring = keyring
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler):
        return cls(keyring_from_settings(crawler.settings), crawler.stats)

    def process_item(self, item):
        if not isinstance(item, PersonListing):
            return item
        ring, scan_id = self.keyring, item.scan_id
        url_ciphertext = ring.encrypt(item.listing_url, listing_url_aad(scan_id))
        url_index = ring.blind_index(item.listing_url)
        rows = [
            (
                scan_id, item.site, data_type,
                ring.encrypt(value, value_aad(scan_id, data_type)), ring.blind_index(value),
                url_ciphertext, url_index, ring.current_key_id, item.confidence, item.screenshot_sha256,
            )  # fmt: skip
            for data_type, value in item.data()
        ]
        self.stats.inc_value("encrypt/values", len(rows))
        return TableRows("findings", FINDING_COLUMNS, rows, source=item.site)
