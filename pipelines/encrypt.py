"""Seals personal data: a PersonListing becomes encrypted ``findings`` rows.

Each value is AES-256-GCM encrypted with associated data binding it to its
scan and data type, and blind-indexed (HMAC) so equality and dedup work
without decrypting. After this pipeline no clear personal value travels on.
A RejectedCandidate (see pipelines/match.py) becomes one ``rejected_candidates``
row: its listing URL sealed the same way, its score and evidence in the clear.
Findings also record the match evidence and which version (sha256) of the site
definition extracted them.
"""

from __future__ import annotations

import orjson

from crawler.items import PersonListing, RejectedCandidate, TableRows
from crawler.security import context, keyring_from_settings

FINDING_COLUMNS = (
    "scan_id",
    "website_id",
    "data_type",
    "value_ciphertext",
    "value_index",
    "listing_url_ciphertext",
    "listing_url_index",
    "key_id",
    "confidence",
    "screenshot_sha256",
    "listing_group",
    "evidence",
    "definition_sha256",
)
REJECTED_COLUMNS = (
    "scan_id",
    "website_id",
    "listing_url_ciphertext",
    "listing_url_index",
    "key_id",
    "confidence",
    "threshold",
    "evidence",
)


class EncryptPipeline:
    def __init__(self, keyring, stats, crawler=None):
        self.keyring = keyring
        self.stats = stats
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler):
        return cls(keyring_from_settings(crawler.settings), crawler.stats, crawler)

    def definition_sha256(self, site: str) -> str | None:
        """The sha256 of the site definition the scan runs with (crawler.scans.Website)."""
        scan = getattr(getattr(self.crawler, "spider", None), "scan", None)
        websites = scan.websites if scan is not None else ()
        return next((w.definition_sha256 for w in websites if w.id == site), None)

    def process_item(self, item):
        if isinstance(item, RejectedCandidate):
            return self.seal_rejected(item)
        if not isinstance(item, PersonListing):
            return item
        ring, scan_id = self.keyring, item.scan_id
        url_ciphertext = ring.encrypt(item.listing_url, context.finding_listing_url(scan_id))
        url_index = ring.blind_index(item.listing_url)
        evidence = orjson.dumps(item.evidence).decode() if item.evidence is not None else None
        definition = item.definition_sha256 or self.definition_sha256(item.site)
        rows = [
            (
                scan_id,
                item.site,
                finding.data_type,
                ring.encrypt(finding.value, context.finding_value(scan_id, finding.data_type)),
                ring.blind_index(finding.value),
                url_ciphertext,
                url_index,
                ring.current_key_id,
                item.confidence,
                item.screenshot_sha256,
                item.listing_group,
                evidence,
                definition,
            )
            for finding in item.findings()
        ]
        self.stats.inc_value("encrypt/values", len(rows))
        if item.held:  # read under a quarantined definition version: waits for a person (crawler.healing)
            self.stats.inc_value("encrypt/held_values", len(rows))
            return TableRows("held_findings", FINDING_COLUMNS, rows, source=item.site, on_commit=item.on_commit)
        return TableRows("findings", FINDING_COLUMNS, rows, source=item.site, on_commit=item.on_commit)

    def seal_rejected(self, item: RejectedCandidate) -> TableRows:
        ring = self.keyring
        row = (
            item.scan_id,
            item.site,
            ring.encrypt(item.listing_url, context.rejected_listing_url(item.scan_id)),
            ring.blind_index(item.listing_url),
            ring.current_key_id,
            item.confidence,
            item.threshold,
            orjson.dumps(item.evidence).decode(),
        )
        self.stats.inc_value("encrypt/rejected_candidates")
        return TableRows("rejected_candidates", REJECTED_COLUMNS, [row], source=item.site)
