"""The SQL of every read the API makes, with sample parameters, for ``EXPLAIN`` (bench/api.py shows
which index each one uses). Nothing in the product imports it."""

from __future__ import annotations

from datetime import UTC, datetime

from crawler.store import findings, keys, scans, stats


def explain_queries(owner: str, scan_id: str) -> list[tuple[str, str, dict | tuple]]:
    """(name, SQL, parameters) of every query the API's reads run, for ``EXPLAIN`` (bench/api.py)."""
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
        ("owns_scan", scans.OWNS_SCAN, (scan_id, owner)),
        ("findings", findings.LISTINGS_PAGE.format(after=""), listings),
        ("findings_page", findings.LISTINGS_PAGE.format(after=findings.AFTER_LISTING), listings),
        ("stats_scans", stats.OWNER_SCANS, (owner,)),
        ("stats_counts", stats.SCAN_FINDINGS, ([scan_id],)),
        ("stats_sites", stats.SITE_RUNS, (owner,)),
    ]
