"""One owner's statistics: scans by status, findings by type and site, listings per scan, and per
site how often its scans succeed and how long they take.

Each query starts from the owner's scans (``scans_owner_status_created_idx``); nothing is decrypted.
A finished scan's findings no longer change in number (only their status moves), so the scan keeps
their counts on its row: ``scans.findings_summary`` = {site: {data_type: n}}, written from its
findings by the same statement that finishes it (``SUMMARY_OF_SCANS``: crawler/store/scans.py
finish_scan, crawler/store/jobs.py end_unfinished) and cleared when it runs again. Stats read those
summaries with the rows and count live (``findings_scan_listing_idx``) only the findings of scans
without one: running or pending scans, and rows finished before the column existed. A dashboard's
stats therefore cost an index scan of the owner's scans, not a count of every finding they have,
in every API process alike.

A listing is counted by its name datum: every stored listing has exactly one
(pipelines/validate.py drops a listing without a name), so listings of a site = its ``name`` findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from crawler.db.pool import run_in_transaction

FINAL = frozenset({"completed", "failed", "cancelled"})
LISTING_DATUM = "name"  # one per listing (see above)

# {scans} is a condition on findings.scan_id: one scan (finish_scan) or many (bench/api.py's seed)
SUMMARY_OF_SCANS = """
SELECT scan_id, jsonb_object_agg(website_id, types) AS summary FROM (
    SELECT scan_id, website_id, jsonb_object_agg(data_type, n) AS types FROM (
        SELECT scan_id, website_id, data_type, count(*) AS n FROM findings WHERE {scans}
        GROUP BY scan_id, website_id, data_type) per_type
    GROUP BY scan_id, website_id) per_site
GROUP BY scan_id"""

# the summary of the scan %(id)s ('{}' when it found nothing: summarised, unlike NULL), for a
# statement that sets a final status; NULL for any other status (the scan may find more)
SUMMARY_OF_SCAN = (
    "CASE WHEN {status} IN ('completed', 'failed', 'cancelled') THEN coalesce(("
    "SELECT summary FROM (" + SUMMARY_OF_SCANS.format(scans="scan_id = {id}") + ") one), '{{}}'::jsonb) END"
)

OWNER_SCANS = "SELECT id, status, findings_summary::text FROM scans WHERE owner = %s"

# per (scan, site, type) of scans without a summary: findings, one hash aggregate
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


def summary_of_scan(status: str, scan_id: str) -> str:
    """SQL of a scan's findings summary (``SUMMARY_OF_SCAN``) with the given placeholders."""
    return SUMMARY_OF_SCAN.format(status=status, id=scan_id)


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


def _add_scan(result: OwnerStats, scan_id: str, summary: dict[str, dict[str, int]]) -> None:
    for site, types in summary.items():
        for data_type, n in types.items():
            _add(result.findings_by_type, data_type, n)
            _add(result.findings_by_site, site, n)
        listings = types.get(LISTING_DATUM, 0)
        if listings:
            _add(result.listings_by_site, site, listings)
            _add(result.listings_per_scan, scan_id, listings)


async def stats(settings, owner: str) -> OwnerStats:
    async def load(conn):
        result = OwnerStats()
        live: dict[str, dict[str, dict[str, int]]] = {}
        for scan_id, status, summary in await (await conn.execute(OWNER_SCANS, (owner,))).fetchall():
            _add(result.scans_by_status, status, 1)
            if status in FINAL and summary is not None:
                _add_scan(result, str(scan_id), orjson.loads(summary))
            else:  # running or pending (may find more), or finished without a summary
                live[str(scan_id)] = {}
        if live:
            for scan_id, site, data_type, n in await (await conn.execute(SCAN_FINDINGS, (list(live),))).fetchall():
                live[str(scan_id)].setdefault(site, {})[data_type] = n
            for scan_id, summary in live.items():
                _add_scan(result, scan_id, summary)
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


# findings written to a scan after it finished (a replayed dead letter): its summary is made again
RESUMMARISE = (
    "UPDATE scans s SET findings_summary = coalesce(u.summary, '{}'::jsonb) FROM scans t LEFT JOIN ("
    + SUMMARY_OF_SCANS.format(scans="scan_id = ANY(%(ids)s)")
    + ") u ON u.scan_id = t.id WHERE s.id = t.id AND t.id = ANY(%(ids)s) AND t.findings_summary IS NOT NULL"
)


async def resummarise(settings, scan_ids) -> None:
    """Summarise again the finished scans among ``scan_ids`` (their findings changed after the end)."""
    ids = sorted({str(i) for i in scan_ids})
    if ids:
        await run_in_transaction(settings, lambda conn: conn.execute(RESUMMARISE, {"ids": ids}))
