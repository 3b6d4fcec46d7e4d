"""Findings as their owner sees them: listings decrypted, screenshots (removal requests: ``removals.py``).

A *listing* is the findings of one (scan, site, listing URL): the pipeline writes one row per exposed
datum, all with the same sealed listing URL, confidence, evidence and screenshot. Its id is its
smallest finding id. Pages of listings follow ``findings_scan_listing_idx`` (scan_id, website_id,
listing_url_index, id) with a keyset cursor, and only the rows of the returned page are decrypted.
Every lookup is scoped to the scans of one owner: another user's finding is simply not found.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from crawler.db.pool import run_in_transaction
from crawler.security import context, keyring_from_settings
from crawler.security.evidence import ScreenshotStore, screenshots_dir
from crawler.store import scans

LISTINGS_PAGE = """
WITH page AS (
    SELECT website_id, listing_url_index, min(id) AS listing_id
    FROM findings WHERE scan_id = %(scan)s{after}
    GROUP BY website_id, listing_url_index
    ORDER BY website_id, listing_url_index
    LIMIT %(limit)s
)
SELECT p.listing_id, f.website_id, f.listing_url_index, f.data_type, f.value_ciphertext, f.listing_url_ciphertext,
       f.confidence, f.evidence, f.status, f.screenshot_sha256, f.found_at
FROM page p
JOIN findings f ON f.scan_id = %(scan)s AND f.website_id = p.website_id AND f.listing_url_index = p.listing_url_index
ORDER BY p.website_id, p.listing_url_index, f.id"""
AFTER_LISTING = " AND (website_id, listing_url_index) > (%(after_site)s, %(after_index)s)"

# the listing a finding id belongs to, if its scan is the owner's
OWNED_LISTING = """
SELECT f.scan_id, f.website_id, f.listing_url_index
FROM findings f JOIN scans s ON s.id = f.scan_id
WHERE f.id = %s AND s.owner = %s"""

LISTING_SCREENSHOT = """
SELECT g.screenshot_sha256 FROM findings g
WHERE g.scan_id = %s AND g.website_id = %s AND g.listing_url_index = %s AND g.screenshot_sha256 IS NOT NULL
LIMIT 1"""

# a listing's status when its findings differ (a datum found after the removal request, say)
STATUS_ORDER = ("removal_requested", "reappeared", "found", "removed", "dismissed")


@dataclass
class Listing:
    id: int
    site: str
    url: str
    confidence: float
    evidence: dict | None
    status: str
    has_screenshot: bool
    found_at: object
    data: list[tuple[str, str]]  # (data type, value)
    cursor: tuple[str, bytes]  # (site, listing URL blind index): the keyset position after it


@dataclass(frozen=True)
class ListingPage:
    listings: list[Listing]
    more: bool


async def list_listings(settings, owner: str, scan_id: str, limit: int = 20, after: tuple | None = None):
    """A page of the scan's listings decrypted for ``owner``, or None when the scan is not theirs.
    ``after`` is the cursor (site, listing URL index) of the previous page's last listing."""
    sql = LISTINGS_PAGE.format(after=AFTER_LISTING if after else "")
    params = {"scan": scan_id, "limit": limit + 1}
    if after:
        params.update(after_site=after[0], after_index=after[1])

    async def load(conn):
        if await (await conn.execute(scans.OWNS_SCAN, (scan_id, owner))).fetchone() is None:
            return None
        return await (await conn.execute(sql, params)).fetchall()

    rows = await run_in_transaction(settings, load)
    if rows is None:
        return None
    ring = keyring_from_settings(settings)
    listings: list[Listing] = []
    statuses: list[set] = []
    for listing_id, site, url_index, data_type, value, url, confidence, evidence, status, shot, found_at in rows:
        if not listings or listings[-1].id != listing_id:
            url_text = ring.decrypt_text(url, context.finding_listing_url(scan_id))
            cursor = (site, bytes(url_index))
            listings.append(
                Listing(listing_id, site, url_text, confidence, evidence, status, False, found_at, [], cursor)
            )
            statuses.append(set())
        listing = listings[-1]
        listing.data.append((data_type, ring.decrypt_text(value, context.finding_value(scan_id, data_type))))
        listing.confidence = max(listing.confidence, confidence)
        listing.has_screenshot = listing.has_screenshot or shot is not None
        statuses[-1].add(status)
    for listing, seen in zip(listings, statuses, strict=True):
        listing.status = next(s for s in STATUS_ORDER if s in seen)
    more = len(listings) > limit
    return ListingPage(listings[:limit], more)


async def _owned_listing(conn, owner: str, finding_id: int):
    return await (await conn.execute(OWNED_LISTING, (finding_id, owner))).fetchone()


async def load_screenshot(settings, owner: str, finding_id: int) -> bytes | None:
    """The decrypted PNG of the finding's listing, if the finding is ``owner``'s and has one."""

    async def lookup(conn):
        listing = await _owned_listing(conn, owner, finding_id)
        if listing is None:
            return None
        row = await (await conn.execute(LISTING_SCREENSHOT, listing)).fetchone()
        return row[0] if row else None

    sha256 = await run_in_transaction(settings, lookup)
    if sha256 is None:
        return None
    store = ScreenshotStore(screenshots_dir(settings), keyring_from_settings(settings))
    try:
        return await asyncio.to_thread(store.load, sha256)
    except FileNotFoundError:
        return None
