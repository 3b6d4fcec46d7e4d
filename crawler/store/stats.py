"""One owner's statistics: scans by status, findings by type and site, listings per scan, and per
site how often its scans succeed and how long they take.

Each query starts from the owner's scans (``scans_owner_status_created_idx``) and reads findings by
``findings_scan_listing_idx``; nothing is decrypted. A finished scan's findings no longer change in
number (only their status moves), so their counts are kept in ``ScanCounts`` and only the findings
of scans not seen before, or still running, are counted again: a dashboard that refreshes costs an
index scan of the owner's scans, not a count of every finding they have.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crawler.db.pool import run_in_transaction

FINAL = frozenset({"completed", "failed", "cancelled"})

OWNER_SCANS = "SELECT id, status, updated_at FROM scans WHERE owner = %s"

# per (scan, site, type): findings, one hash aggregate. Listings are counted by their name datum:
# every stored listing has exactly one (pipelines/validate.py drops a listing without a name), and
# counting it is 2-3x cheaper than count(DISTINCT listing_url_index) over the same rows
SCAN_FINDINGS = """
SELECT scan_id, website_id, data_type, count(*)
FROM findings WHERE scan_id = ANY(%s)
GROUP BY scan_id, website_id, data_type"""

# a site's run succeeded when it read its pages (found, no_match, no_results), not partial or error
SITE_RUNS = """
SELECT c.key, count(*),
       count(*) FILTER (WHERE c.value->>'outcome' IN ('found', 'no_match', 'no_results')),
       avg(extract(epoch FROM s.finished_at - s.started_at)) FILTER (WHERE s.started_at IS NOT NULL)
FROM scans s CROSS JOIN LATERAL jsonb_each(s.counters) c
WHERE s.owner = %s AND s.status IN ('completed', 'failed', 'cancelled') AND s.finished_at IS NOT NULL
  AND jsonb_typeof(s.counters) = 'object'
GROUP BY c.key"""

SCANS_BY_STATUS_ALL = "SELECT status, count(*) FROM scans GROUP BY status"


@dataclass
class ScanFindings:
    """One scan's findings in numbers."""

    by_site_and_type: dict[tuple[str, str], int] = field(default_factory=dict)
    listings_by_site: dict[str, int] = field(default_factory=dict)


class ScanCounts:
    """Findings counts of finished scans, kept (up to ``limit`` scans) because they are final."""

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self.scans: dict[str, tuple[object, ScanFindings]] = {}  # scan id -> (its row's updated_at, counts)

    def get(self, scan_id: str, updated_at) -> ScanFindings | None:
        entry = self.scans.get(scan_id)
        return entry[1] if entry is not None and entry[0] == updated_at else None

    def keep(self, scan_id: str, updated_at, counts: ScanFindings) -> None:
        if scan_id not in self.scans and len(self.scans) >= self.limit:
            self.scans.pop(next(iter(self.scans)))
        self.scans[scan_id] = (updated_at, counts)


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


def _add(totals: dict, key, n: int) -> None:
    totals[key] = totals.get(key, 0) + n


async def stats(settings, owner: str, cache: ScanCounts | None = None) -> OwnerStats:
    cache = cache if cache is not None else ScanCounts()

    async def load(conn):
        result = OwnerStats()
        scans = [(str(i), s, u) for i, s, u in await (await conn.execute(OWNER_SCANS, (owner,))).fetchall()]
        # a scan's row changes when it runs again (a retry) or its counters move: then it is counted again
        counted = {
            scan_id: cache.get(scan_id, updated) if status in FINAL else None for scan_id, status, updated in scans
        }
        missing = [scan_id for scan_id, counts in counted.items() if counts is None]
        if missing:
            fresh = {scan_id: ScanFindings() for scan_id in missing}
            for scan_id, site, data_type, n in await (await conn.execute(SCAN_FINDINGS, (missing,))).fetchall():
                counts = fresh[str(scan_id)]
                counts.by_site_and_type[site, data_type] = n
                if data_type == "name":
                    counts.listings_by_site[site] = n
            counted.update(fresh)
        missing = set(missing)
        for scan_id, status, updated in scans:
            _add(result.scans_by_status, status, 1)
            counts = counted[scan_id]
            if status in FINAL and scan_id in missing:
                cache.keep(scan_id, updated, counts)
            for (site, data_type), n in counts.by_site_and_type.items():
                _add(result.findings_by_type, data_type, n)
                _add(result.findings_by_site, site, n)
            for site, n in counts.listings_by_site.items():
                _add(result.listings_by_site, site, n)
                _add(result.listings_per_scan, scan_id, n)
        for site, runs, succeeded, mean in await (await conn.execute(SITE_RUNS, (owner,))).fetchall():
            result.sites[site] = SiteRuns(runs, succeeded, float(mean) if mean is not None else None)
        return result

    return await run_in_transaction(settings, load)


async def scans_by_status(settings) -> dict[str, int]:
    """Every scan by status (the /metrics gauge; ``scans_status_created_idx``)."""

    async def load(conn):
        return dict(await (await conn.execute(SCANS_BY_STATUS_ALL)).fetchall())

    return await run_in_transaction(settings, load)


async def database_ok(settings) -> None:
    """Raises when the database cannot answer (GET /health)."""
    await run_in_transaction(settings, lambda conn: conn.execute("SELECT 1"), attempts=1)


def explain_queries(owner: str, scan_id: str) -> list[tuple[str, str, dict | tuple]]:
    """(name, SQL, parameters) of every query the API's reads run, for ``EXPLAIN`` (bench/api.py)."""
    from datetime import UTC, datetime

    from crawler.store import findings, keys, scans

    page = {"owner": owner, "status": "completed", "limit": 21, "created_at": datetime.now(UTC), "after_id": scan_id}
    listings = {"scan": scan_id, "limit": 21, "after_site": "", "after_index": b""}
    return [
        ("auth", keys.AUTHENTICATE, (b"\0" * 32,)),
        ("list", scans.LIST_OWNED.format(columns=scans.OWNED_COLUMNS, status="", after=""), page),
        (
            "list_page",
            scans.LIST_OWNED.format(columns=scans.OWNED_COLUMNS, status=scans.STATUS_FILTER, after=scans.AFTER_CURSOR),
            page,
        ),
        ("get", scans.GET_OWNED, {"id": scan_id, "owner": owner}),
        ("owns_scan", findings.OWNS_SCAN, (scan_id, owner)),
        ("findings", findings.LISTINGS_PAGE.format(after=""), listings),
        ("findings_page", findings.LISTINGS_PAGE.format(after=findings.AFTER_LISTING), listings),
        ("stats_scans", OWNER_SCANS, (owner,)),
        ("stats_counts", SCAN_FINDINGS, ([scan_id],)),
        ("stats_sites", SITE_RUNS, (owner,)),
    ]
