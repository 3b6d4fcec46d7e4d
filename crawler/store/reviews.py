""" "Is this you?": candidates the matcher scored in the review band, and the person's answers.

A candidate scoring MATCH_REVIEW_THRESHOLD <= confidence < MATCH_THRESHOLD is rejected like any
other (a ``rejected_candidates`` row), but keeps its extracted listing, sealed, in
``review_ciphertext`` (AAD ``context.rejected_review(scan_id)``) until its owner answers
(pipelines/match.py seals it with ``sealed_review_rows``). The answer is kept per owner and listing
in ``listing_reviews``:

- yes: the listing becomes findings of the candidate's scan, sealed by the same EncryptPipeline the
  crawl uses (so it can be asked to be removed like any finding); later scans accept it too;
- no: nothing is made, and the listing is never offered again (a later scan keeps no review copy).

Either way the sealed copies of that listing are dropped once answered: nothing personal is kept
that is not needed. Lookups are owner-scoped; another owner's candidate is not found.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime

import orjson

from crawler.db.pool import run_in_transaction
from crawler.items import PersonListing, RejectedCandidate, TableRows
from crawler.security import context, keyring_from_settings

# the extracted listing's fields kept for review (the scan, site and score are columns of the row)
NOT_KEPT = {"site", "scan_id", "accepted", "confidence", "evidence", "screenshot", "screenshot_sha256", "on_commit"}
LISTING_FIELDS = tuple(f.name for f in dataclasses.fields(PersonListing) if f.name not in NOT_KEPT | {"listing_group"})

DECISION = """
SELECT lr.decision FROM listing_reviews lr JOIN scans s ON coalesce(s.owner, '') = lr.owner
WHERE s.id = %s AND lr.website_id = %s AND lr.listing_url_index = %s"""

# open questions of an owner: the newest review copy per listing not answered yet and not a finding
OPEN_REVIEWS = """
SELECT DISTINCT ON (rc.website_id, rc.listing_url_index)
       rc.id, rc.scan_id, rc.website_id, rc.confidence, rc.review_ciphertext, rc.decided_at
FROM rejected_candidates rc JOIN scans s ON s.id = rc.scan_id
WHERE s.owner IS NOT DISTINCT FROM %(owner)s AND rc.review_ciphertext IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM listing_reviews lr WHERE lr.owner = coalesce(%(owner)s, '')
                  AND lr.website_id = rc.website_id AND lr.listing_url_index = rc.listing_url_index)
  AND NOT EXISTS (SELECT 1 FROM findings f JOIN scans fs ON fs.id = f.scan_id
                  WHERE fs.owner IS NOT DISTINCT FROM %(owner)s
                    AND f.website_id = rc.website_id AND f.listing_url_index = rc.listing_url_index)
ORDER BY rc.website_id, rc.listing_url_index, rc.decided_at DESC, rc.id DESC
LIMIT %(limit)s"""

OWNED_CANDIDATE = """
SELECT rc.id, rc.scan_id, rc.website_id, rc.listing_url_index, rc.confidence, rc.evidence, rc.review_ciphertext
FROM rejected_candidates rc JOIN scans s ON s.id = rc.scan_id
WHERE rc.id = %s AND s.owner IS NOT DISTINCT FROM %s AND rc.review_ciphertext IS NOT NULL
FOR UPDATE OF rc"""
RECORD = """
INSERT INTO listing_reviews (owner, website_id, listing_url_index, decision) VALUES (coalesce(%s, ''), %s, %s, %s)
ON CONFLICT DO NOTHING RETURNING decision"""
FORGET_COPIES = """
UPDATE rejected_candidates SET review_ciphertext = NULL
WHERE website_id = %(site)s AND listing_url_index = %(index)s AND review_ciphertext IS NOT NULL
  AND scan_id IN (SELECT id FROM scans WHERE owner IS NOT DISTINCT FROM %(owner)s)"""
LISTING_ID = "SELECT min(id) FROM findings WHERE scan_id = %s AND website_id = %s AND listing_url_index = %s"


class AlreadyAnswered(Exception):
    """The listing was answered before (from another candidate of it, or another tab)."""


@dataclass
class Review:
    id: int  # the rejected candidate's id
    scan_id: str
    site: str
    confidence: float
    seen_at: datetime
    listing: PersonListing  # decrypted for its owner, in memory only

    def __repr__(self) -> str:  # no personal value in a traceback or a log
        return f"Review(id={self.id}, site={self.site})"


# --- sealing (the match pipeline) and opening --------------------------------------------------


def listing_document(item: PersonListing) -> dict:
    """The extracted listing's values (no score, no screenshot): what the review copy holds."""
    document = {name: getattr(item, name) for name in LISTING_FIELDS}
    if document.get("age_range") is not None:
        document["age_range"] = list(document["age_range"])
    return document


def listing_from_document(site: str, scan_id: str, document: dict) -> PersonListing:
    values = {name: document[name] for name in LISTING_FIELDS if name in document}
    if values.get("age_range") is not None:
        values["age_range"] = tuple(values["age_range"])
    return PersonListing(site=site, scan_id=str(scan_id), **values)


def sealed_review_rows(ring, item: PersonListing, candidate: RejectedCandidate, stats) -> TableRows:
    """The candidate's ``rejected_candidates`` row as the encrypt pipeline seals it, plus the sealed
    review copy of the listing."""
    from pipelines.encrypt import EncryptPipeline

    rows = EncryptPipeline(ring, stats).seal_rejected(candidate)
    review = ring.encrypt(orjson.dumps(listing_document(item)), context.rejected_review(candidate.scan_id))
    return TableRows(rows.table, (*rows.columns, "review_ciphertext"), [(*rows.rows[0], review)], source=rows.source)


async def decision(settings, scan_id: str, site: str, url_index: bytes) -> str | None:
    """The scan owner's answer about this listing ('yes', 'no'), None when never asked."""

    async def read(conn):
        return await (await conn.execute(DECISION, (scan_id, site, url_index))).fetchone()

    row = await run_in_transaction(settings, read)
    return None if row is None else row[0]


# --- the person's side (API, page) -------------------------------------------------------------


async def list_reviews(settings, owner: str | None, limit: int = 50) -> list[Review]:
    """``owner``'s open "is this you?" questions, one per listing (its newest copy)."""

    async def load(conn):
        return await (await conn.execute(OPEN_REVIEWS, {"owner": owner, "limit": limit})).fetchall()

    ring = keyring_from_settings(settings)
    reviews = []
    for rid, scan_id, site, confidence, sealed, seen_at in await run_in_transaction(settings, load):
        document = orjson.loads(ring.decrypt(bytes(sealed), context.rejected_review(str(scan_id))))
        reviews.append(
            Review(rid, str(scan_id), site, float(confidence), seen_at, listing_from_document(site, scan_id, document))
        )
    return reviews


class _NoStats:
    def inc_value(self, *args, **kwargs):
        pass


@dataclass(frozen=True)
class Answered:
    decision: str  # 'yes' or 'no'
    listing_id: int | None  # yes: the listing's id among the findings (request its removal with it)


async def answer(settings, owner: str | None, candidate_id: int, yes: bool) -> Answered | None:
    """Record the owner's answer about the candidate's listing. Yes: its findings are written (in
    the candidate's scan). None when there is no such open question of ``owner``'s;
    AlreadyAnswered when the listing was answered meanwhile."""
    from pipelines.encrypt import EncryptPipeline

    ring = keyring_from_settings(settings)

    async def work(conn):
        row = await (await conn.execute(OWNED_CANDIDATE, (candidate_id, owner))).fetchone()
        if row is None:
            return None
        _, scan_id, site, url_index, confidence, evidence, sealed = row
        scan_id = str(scan_id)
        recorded = await (await conn.execute(RECORD, (owner, site, url_index, "yes" if yes else "no"))).fetchone()
        if recorded is None:
            raise AlreadyAnswered(candidate_id)
        await conn.execute(FORGET_COPIES, {"site": site, "index": url_index, "owner": owner})
        if not yes:
            return Answered("no", None)
        document = orjson.loads(ring.decrypt(bytes(sealed), context.rejected_review(scan_id)))
        item = listing_from_document(site, scan_id, document)
        item.accepted = True
        item.confidence = float(confidence)
        item.evidence = {**(evidence if isinstance(evidence, dict) else {}), "review": "yes"}
        rows = EncryptPipeline(ring, _NoStats()).process_item(item)
        columns = ", ".join(rows.columns)
        marks = ", ".join(["%s"] * len(rows.columns))
        for values in rows.rows:
            await conn.execute(f"INSERT INTO findings ({columns}) VALUES ({marks})", values)  # fixed names
        listing_id = (await (await conn.execute(LISTING_ID, (scan_id, site, bytes(url_index)))).fetchone())[0]
        return Answered("yes", listing_id)

    return await run_in_transaction(settings, work)
