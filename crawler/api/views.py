"""Store records -> API bodies (crawler/api/models.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from crawler.api import models
from crawler.spider_args import PersonQuery
from crawler.store.findings import Listing
from crawler.store.scans import OwnedScan

FINAL = frozenset({"completed", "failed", "cancelled"})
COUNT_FIELDS = ("listings", "accepted", "rejected", "stored", "screenshots")


def person(query: PersonQuery | None) -> models.PersonOut | None:
    if query is None:
        return None
    return models.PersonOut(
        first_name=query.first_name,
        last_name=query.last_name,
        middle_name=query.middle_name or None,
        city=query.city or None,
        state=query.state or None,
        age=query.age,
        emails=[query.email] if query.email else [],
        phones=[query.phone] if query.phone else [],
    )


def summary(scan: OwnedScan) -> models.ScanSummary:
    return models.ScanSummary(
        id=scan.id,
        status=scan.status,
        priority=scan.priority,
        sites=scan.sites,
        person=person(scan.query),
        created_at=scan.created_at,
        started_at=scan.started_at,
        finished_at=scan.finished_at,
    )


def _ints(value) -> dict[str, int]:
    if not isinstance(value, dict):
        return {}
    return {str(k): int(v) for k, v in value.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _int(value) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def site_progress(scan: OwnedScan) -> list[models.SiteProgress]:
    """One entry per site of the scan (and any the counters name), from the row's counters."""
    counters = scan.counters if isinstance(scan.counters, dict) else {}
    progress = []
    for site in list(dict.fromkeys([*scan.sites, *counters])):
        c = counters.get(site) if isinstance(counters.get(site), dict) else {}
        errors = _ints(c.get("errors"))
        progress.append(
            models.SiteProgress(
                site=site,
                outcome=c.get("outcome") if isinstance(c.get("outcome"), str) else None,
                pages=_ints(c.get("pages")),
                errors_by_kind=errors,
                blocks=_ints(c.get("blocks")),
                errors=sum(errors.values()),
                **{name: _int(c.get(name)) for name in COUNT_FIELDS},
            )
        )
    return progress


def detail(scan: OwnedScan) -> models.ScanDetail:
    progress = site_progress(scan)
    totals = {name: sum(getattr(p, name) for p in progress) for name in (*COUNT_FIELDS, "errors")}
    errors: dict[str, int] = {}
    for p in progress:
        for kind, n in p.errors_by_kind.items():
            errors[kind] = errors.get(kind, 0) + n
    duration = None
    if scan.started_at is not None:
        end = scan.finished_at or (None if scan.status in FINAL else datetime.now(UTC))
        duration = (end - scan.started_at).total_seconds() if end is not None else None
    definitions = scan.definitions if isinstance(scan.definitions, dict) else {}
    return models.ScanDetail(
        **summary(scan).model_dump(),
        updated_at=scan.updated_at,
        duration_seconds=duration,
        attempts=scan.attempts,
        error=scan.error,
        cancel_requested=scan.cancel_requested_at is not None,
        definitions={str(k): str(v) for k, v in definitions.items()},
        progress=progress,
        counts=models.Counts(**totals),
        errors_by_kind=errors,
    )


def listing(item: Listing) -> models.Listing:
    return models.Listing(
        id=item.id,
        site=item.site,
        url=item.url,
        confidence=round(float(item.confidence), 4),
        evidence=item.evidence if isinstance(item.evidence, dict) else None,
        status=item.status,
        screenshot_url=f"/api/findings/{item.id}/screenshot" if item.has_screenshot else None,
        found_at=item.found_at,
        data=[models.Datum(type=t, value=v) for t, v in item.data],
    )
