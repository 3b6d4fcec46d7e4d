"""One owner's statistics: scans by status, findings by type and site, listings per scan, and per
site how often its scans succeed and how long they take.

Each query starts from the owner's scans (``scans_owner_created_idx``) and joins their findings by
``findings_scan_listing_idx``; nothing is decrypted. Findings counts still read every finding the
owner has, so the API keeps the result for a few seconds (crawler/api) rather than count again on
every request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.db.pool import run_in_transaction

SCANS_BY_STATUS = "SELECT status, count(*) FROM scans WHERE owner = %s GROUP BY status"

FINDINGS_BY_SITE_AND_TYPE = """
SELECT f.website_id, f.data_type, count(*)
FROM scans s JOIN findings f ON f.scan_id = s.id
WHERE s.owner = %s
GROUP BY f.website_id, f.data_type"""

LISTINGS_BY_SCAN_AND_SITE = """
SELECT s.id, f.website_id, count(DISTINCT f.listing_url_index)
FROM scans s JOIN findings f ON f.scan_id = s.id
WHERE s.owner = %s
GROUP BY s.id, f.website_id"""

# a site's run succeeded when it read its pages (found, no_match, no_results), not partial or error
SITE_RUNS = """
SELECT c.key, count(*),
       count(*) FILTER (WHERE c.value->>'outcome' IN ('found', 'no_match', 'no_results')),
       avg(extract(epoch FROM s.finished_at - s.started_at)) FILTER (WHERE s.started_at IS NOT NULL)
FROM scans s CROSS JOIN LATERAL jsonb_each(s.counters) c
WHERE s.owner = %s AND s.status IN ('completed', 'failed', 'cancelled') AND s.finished_at IS NOT NULL
GROUP BY c.key"""


@dataclass
class SiteRuns:
    runs: int
    succeeded: int
    mean_seconds: float | None

    @property
    def success_rate(self) -> float | None:
        return self.succeeded / self.runs if self.runs else None


@dataclass
class OwnerStats:
    scans_by_status: dict[str, int] = field(default_factory=dict)
    findings_by_type: dict[str, int] = field(default_factory=dict)
    findings_by_site: dict[str, int] = field(default_factory=dict)
    listings_by_site: dict[str, int] = field(default_factory=dict)
    listings_per_scan: dict[str, int] = field(default_factory=dict)  # scan id -> listings (scans with any)
    sites: dict[str, SiteRuns] = field(default_factory=dict)


async def stats(settings, owner: str) -> OwnerStats:
    async def load(conn):
        stats = OwnerStats()
        for status, n in await (await conn.execute(SCANS_BY_STATUS, (owner,))).fetchall():
            stats.scans_by_status[status] = n
        for site, data_type, n in await (await conn.execute(FINDINGS_BY_SITE_AND_TYPE, (owner,))).fetchall():
            stats.findings_by_type[data_type] = stats.findings_by_type.get(data_type, 0) + n
            stats.findings_by_site[site] = stats.findings_by_site.get(site, 0) + n
        for scan_id, site, n in await (await conn.execute(LISTINGS_BY_SCAN_AND_SITE, (owner,))).fetchall():
            stats.listings_by_site[site] = stats.listings_by_site.get(site, 0) + n
            stats.listings_per_scan[str(scan_id)] = stats.listings_per_scan.get(str(scan_id), 0) + n
        for site, runs, succeeded, mean in await (await conn.execute(SITE_RUNS, (owner,))).fetchall():
            stats.sites[site] = SiteRuns(runs, succeeded, float(mean) if mean is not None else None)
        return stats

    return await run_in_transaction(settings, load)


SCANS_BY_STATUS_ALL = "SELECT status, count(*) FROM scans GROUP BY status"


async def scans_by_status(settings) -> dict[str, int]:
    """Every scan by status (the /metrics gauge; ``scans_status_created_idx``)."""

    async def load(conn):
        return dict(await (await conn.execute(SCANS_BY_STATUS_ALL)).fetchall())

    return await run_in_transaction(settings, load)


async def database_ok(settings) -> None:
    """Raises when the database cannot answer (GET /health)."""
    await run_in_transaction(settings, lambda conn: conn.execute("SELECT 1"), attempts=1)
