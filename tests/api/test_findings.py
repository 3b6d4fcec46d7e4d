"""Findings decrypted for their owner only, grouped by listing, paged; screenshots; removal requests;
stats. Rows are written as the pipelines write them (encrypt pipeline, ScreenshotStore)."""

from pathlib import Path

import psycopg
import pytest
from api_client import PNG, write_listing

from crawler.spider_args import PersonQuery
from crawler.store import scans as store

pytestmark = pytest.mark.integration

PAYLOAD = '<img src=x onerror="alert(1)">Jane Doe'


def listing(n: int, **extra) -> dict:
    return {
        "listing_url": f"http://127.0.0.1/people/jane-doe-{n}",
        "full_name": "Jane Doe",
        "phones": [f"+1312555{n:04d}"],
        "emails": [f"jane{n}@example.org"],
        **extra,
    }


async def test_findings_are_decrypted_for_the_owner_grouped_by_listing(api):
    owner = api.user()
    scan_id = await api.start_scan(owner)
    first = write_listing(api.settings, scan_id, "fastpeople", listing(1, full_name=PAYLOAD), screenshot=PNG)
    second = write_listing(api.settings, scan_id, "thatsthem", listing(2, addresses=["1 Main St, Chicago, IL"]))
    response = await api.get(owner, f"/api/scans/{scan_id}/findings")
    assert response.status_code == 200
    page = response.json()
    assert page["next_cursor"] is None
    by_site = {item["site"]: item for item in page["listings"]}
    shot = by_site["fastpeople"]
    assert shot["id"] == min(first)
    assert shot["url"] == "http://127.0.0.1/people/jane-doe-1"
    assert shot["data"] == [
        {"type": "name", "value": PAYLOAD},
        {"type": "email", "value": "jane1@example.org"},
        {"type": "phone", "value": "+13125550001"},
    ]
    assert shot["status"] == "found" and shot["confidence"] == pytest.approx(0.9)
    assert shot["evidence"] == {"name": {"level": "exact", "weight": 1.0}}
    assert shot["screenshot_url"] == f"/api/findings/{min(first)}/screenshot"
    assert by_site["thatsthem"]["id"] == min(second) and by_site["thatsthem"]["screenshot_url"] is None
    assert {"type": "address", "value": "1 Main St, Chicago, IL"} in by_site["thatsthem"]["data"]
    # JSON, never HTML: the payload is data
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_findings_pages_cover_every_listing_once(api):
    owner = api.user()
    scan_id = await api.start_scan(owner)
    ids = {min(write_listing(api.settings, scan_id, ("fastpeople", "radaris")[n % 2], listing(n))) for n in range(7)}
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(owner, f"/api/scans/{scan_id}/findings", params=params)).json()
        seen += [item["id"] for item in page["listings"]]
        assert all(len(item["data"]) == 3 for item in page["listings"])
        pages += 1
        if (cursor := page["next_cursor"]) is None:
            break
    assert pages == 3 and len(seen) == 7 and set(seen) == ids


async def test_screenshot_is_the_decrypted_png_for_its_owner_only(api):
    owner, other = api.user(), api.user()
    scan_id = await api.start_scan(owner)
    ids = write_listing(api.settings, scan_id, "fastpeople", listing(3), screenshot=PNG)
    plain = write_listing(api.settings, scan_id, "radaris", listing(4))
    for finding_id in ids:  # any finding of the listing leads to its screenshot
        response = await api.get(owner, f"/api/findings/{finding_id}/screenshot")
        assert response.status_code == 200
        assert response.content == PNG
        assert response.headers["content-type"] == "image/png"
        assert response.headers["cache-control"].startswith("private")
    foreign = await api.get(other, f"/api/findings/{ids[0]}/screenshot")
    missing = await api.get(other, "/api/findings/999999999/screenshot")
    assert foreign.status_code == missing.status_code == 404 and foreign.json() == missing.json()
    assert (await api.get(owner, f"/api/findings/{plain[0]}/screenshot")).status_code == 404
    assert PNG not in sealed_files(api.settings["SCREENSHOTS_DIR"])


def sealed_files(root: str) -> bytes:
    files = list(Path(root).rglob("*.enc"))
    assert files
    return b"".join(f.read_bytes() for f in files)


async def test_delete_marks_the_whole_listing_for_removal_idempotently(api, db):
    owner, other = api.user(), api.user()
    scan_id = await api.start_scan(owner)
    ids = write_listing(api.settings, scan_id, "fastpeople", listing(5))
    untouched = write_listing(api.settings, scan_id, "radaris", listing(6))
    foreign = await api.delete(other, f"/api/findings/{ids[1]}")
    assert foreign.status_code == 404 and foreign.json() == (await api.delete(other, "/api/findings/999999999")).json()
    statuses = db.execute("SELECT DISTINCT status FROM findings WHERE id = ANY(%s)", (ids,)).fetchall()
    assert statuses == [("found",)]
    requests = set()
    for _ in range(2):
        response = await api.delete(owner, f"/api/findings/{ids[1]}")
        assert response.status_code == 202
        body = response.json()
        assert body["listing_id"] == min(ids) and body["status"] == "requested" and body["site"] == "fastpeople"
        requests.add(body["id"])
    assert len(requests) == 1  # the listing's one removal request, however often it is asked for
    rows = db.execute("SELECT id, status FROM findings WHERE id = ANY(%s)", (ids + untouched,)).fetchall()
    assert dict(rows) == {**dict.fromkeys(ids, "removal_requested"), **dict.fromkeys(untouched, "found")}
    page = (await api.get(owner, f"/api/scans/{scan_id}/findings")).json()
    assert {item["site"]: item["status"] for item in page["listings"]} == {
        "fastpeople": "removal_requested",
        "radaris": "found",
    }


async def test_stats_count_the_callers_scans_and_findings_only(api):
    owner, other = api.user(), api.user()
    done, running = await api.start_scan(owner), await api.start_scan(owner)
    await api.start_scan(other)
    write_listing(api.settings, done, "fastpeople", listing(7))
    write_listing(api.settings, done, "fastpeople", listing(8))
    write_listing(api.settings, done, "radaris", listing(9, addresses=["2 Oak Ave, Peoria, IL"]))
    write_listing(api.settings, running, "radaris", listing(10))
    counters = {"fastpeople": {"outcome": "found"}, "radaris": {"outcome": "error"}}
    with psycopg.connect(api.settings["DATABASE_URL"], autocommit=True) as conn:
        conn.execute(
            "UPDATE scans SET status = 'running', started_at = now() - interval '30 seconds' WHERE id = %s", (done,)
        )
        conn.execute("UPDATE scans SET status = 'running', started_at = now() WHERE id = %s", (running,))
    # the finished scan's findings are counted from its row's summary, the running one's live
    await store.finish_scan(api.settings, done, "completed", None, counters)
    stats = (await api.get(owner, "/api/stats")).json()
    assert stats["scans_by_status"] == {"completed": 1, "running": 1}
    assert stats["findings_by_type"] == {"name": 4, "email": 4, "phone": 4, "address": 1}
    assert stats["findings_by_site"] == {"fastpeople": 6, "radaris": 7}
    assert stats["listings_by_site"] == {"fastpeople": 2, "radaris": 2}
    assert stats["listings_per_scan"] == {"scans": 1, "with_listings": 2, "mean": 2.0, "max": 3}
    sites = {s["site"]: s for s in stats["sites"]}
    assert sites["fastpeople"]["runs"] == 1 and sites["fastpeople"]["success_rate"] == 1.0
    assert sites["radaris"]["success_rate"] == 0.0
    assert sites["fastpeople"]["mean_duration_seconds"] == pytest.approx(30, abs=2)
    assert set(stats["queue"]) == {"todo", "doing"} and stats["queue"]["todo"] >= 2
    empty = (await api.get(api.user(), "/api/stats")).json()
    assert empty["scans_by_status"] == {} and empty["findings_by_type"] == {} and empty["sites"] == []


async def test_stats_count_a_finished_scan_again_when_it_runs_again(api):
    owner = api.user()
    scan_id = await api.start_scan(owner)
    query = PersonQuery("Jane", "Doe", state="IL")
    await store.start_scan(api.settings, scan_id, "scan", query, ["fastpeople"])
    write_listing(api.settings, scan_id, "fastpeople", listing(11))
    await store.finish_scan(api.settings, scan_id, "completed", None, {})
    first = (await api.get(owner, "/api/stats")).json()
    assert first["findings_by_site"] == {"fastpeople": 3} and first["listings_per_scan"]["max"] == 1
    assert (await api.get(owner, "/api/stats")).json() == first
    # a retry: running again (its summary cleared, its findings counted live), one more listing
    await store.start_scan(api.settings, scan_id, "scan", query, ["fastpeople"])
    write_listing(api.settings, scan_id, "fastpeople", listing(12))
    assert (await api.get(owner, "/api/stats")).json()["findings_by_site"] == {"fastpeople": 6}
    await store.finish_scan(api.settings, scan_id, "completed", None, {})
    again = (await api.get(owner, "/api/stats")).json()
    assert again["findings_by_site"] == {"fastpeople": 6} and again["listings_per_scan"]["max"] == 2
    with psycopg.connect(api.settings["DATABASE_URL"]) as conn:
        summary = conn.execute("SELECT findings_summary FROM scans WHERE id = %s", (scan_id,)).fetchone()[0]
    assert summary == {"fastpeople": {"name": 2, "phone": 2, "email": 2}}
