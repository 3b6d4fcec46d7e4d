"""Seeds of the removal tests (API, page), made through the real code: findings sealed by the encrypt
pipeline (api_client.write_listing), requests, transitions and tasks through crawler.store.removals,
review-band candidates sealed by the match pipeline's own function (crawler.store.reviews)."""

from __future__ import annotations

import uuid

import psycopg

from crawler.items import PersonListing, RejectedCandidate
from crawler.store import removal_flow, removals, reviews
from support import crawl_keyring

CAPTCHA_TEXT = "Solve the CAPTCHA on the broker's form and submit it, then press Done."
CAPTCHA_URL = "http://127.0.0.1:9/removal"


def listing(n: int | str, **extra) -> dict:
    return {
        "listing_url": f"http://127.0.0.1:9/people/jane-doe-{n}",
        "full_name": "Jane Doe",
        "phones": ["+13125550142"],
        **extra,
    }


async def submitted(settings, request_id: int) -> None:
    """The request's first submission made and answered (as the optout crawl records it)."""
    request = await removals.get_request(settings, request_id)
    assert await removal_flow.begin_submission(settings, request_id, request.attempt, 1)
    await removal_flow.finish_submission(settings, request_id, request.attempt, "sent")


async def with_task(settings, request_id: int, kind: str = "captcha") -> int:
    """A human task on the request, as a flow that met a CAPTCHA makes it."""
    return await removal_flow.create_task(
        settings, request_id, kind, CAPTCHA_TEXT, CAPTCHA_URL, step=1, resume_step=2, submitted_by_person=True
    )


class _Stats:
    def inc_value(self, *args, **kwargs):
        pass


def review_candidate(settings, scan_id: str, site: str, url: str | None = None, confidence: float = 0.7, **values):
    """A review-band candidate of the scan, sealed and written as the match pipeline writes it;
    returns (candidate id, the listing)."""
    item = PersonListing(
        site=site,
        scan_id=scan_id,
        listing_url=url or f"http://127.0.0.1:9/maybe/{uuid.uuid4().hex[:8]}",
        full_name=values.pop("full_name", "Jane Q. Doe"),
        **values,
    )
    candidate = RejectedCandidate(site, scan_id, item.listing_url, confidence, 0.85, {"name": {"level": "close"}})
    rows = reviews.sealed_review_rows(crawl_keyring(), item, candidate, _Stats())
    columns = ", ".join(rows.columns)
    marks = ", ".join(["%s"] * len(rows.columns))
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "INSERT INTO websites (id, name, base_url) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (site, site, f"http://127.0.0.1/{site}"),
        )
        candidate_id = conn.execute(
            f"INSERT INTO rejected_candidates ({columns}) VALUES ({marks}) RETURNING id", rows.rows[0]
        ).fetchone()[0]
    return candidate_id, item
