"""crawler.store.removals against PostgreSQL: one request per listing, the transitions the state
machine allows and refuses (with their history and the findings kept in step), exactly-once
submissions under concurrency, backoff, tasks, verification and reappearance after a re-scan.

Findings are written through the real EncryptPipeline (tests/api/api_client.write_listing)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import timedelta

import psycopg
import pytest

from crawler.db.pool import close_pools
from crawler.spider_args import PersonQuery
from crawler.store import removal_flow, removals
from crawler.store import scans as store
from support import ROOT, store_settings

sys.path.insert(0, str(ROOT / "tests" / "api"))
from api_client import write_listing

pytestmark = pytest.mark.integration

PERSON = PersonQuery("Zebulon", "Quixley", city="Springfield", state="IL", email="zq@example.net")
SITE = "fastpeople"


@pytest.fixture
async def settings(database_url, tmp_path):
    settings = store_settings(database_url, tmp_path)
    settings.set("SCREENSHOTS_DIR", str(tmp_path / "shots"))
    settings.set("REMOVAL_MAX_ATTEMPTS", 2)
    yield settings
    await close_pools()


@pytest.fixture
def owner():
    return f"rm-{uuid.uuid4().hex[:8]}"


async def new_scan(settings, owner) -> str:
    scan_id = await store.create_scan(settings, PERSON, "scan", [SITE])
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE scans SET owner = %s WHERE id = %s", (owner, scan_id))
    return scan_id


def listing(url: str) -> dict:
    return {"listing_url": url, "full_name": "Zebulon Quixley", "phones": ["+12175550123"]}


async def found(settings, owner, url=None) -> tuple[str, int, str]:
    """(scan id, a finding id, listing URL) of a new scan that found one listing."""
    url = url or f"http://127.0.0.1:9/person/{uuid.uuid4().hex[:8]}"
    scan_id = await new_scan(settings, owner)
    ids = write_listing(settings, scan_id, SITE, listing(url))
    return scan_id, ids[0], url


def rows(settings, sql, *params):
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def finding_statuses(settings, scan_id) -> set[str]:
    return {r[0] for r in rows(settings, "SELECT status FROM findings WHERE scan_id = %s", scan_id)}


def history(settings, request_id) -> list[tuple]:
    return rows(
        settings,
        "SELECT from_status, to_status, attempt FROM removal_events WHERE request_id = %s ORDER BY id",
        request_id,
    )


async def test_one_request_per_listing_owner_scoped(settings, owner):
    scan_id, finding_id, url = await found(settings, owner)
    first = await removals.request_removal(settings, owner, finding_id)
    again = await removals.request_removal(settings, owner, finding_id)
    assert first is not None and again.id == first.id and again.reference == first.reference
    assert await removals.request_removal(settings, "someone-else", finding_id) is None
    assert first.status == "requested" and first.next_action_at is not None
    assert finding_statuses(settings, scan_id) == {"removal_requested"}
    assert history(settings, first.id) == [(None, "requested", 1)]
    assert url not in repr(first)
    by_listing = await removals.request_removal_by_listing(settings, scan_id, SITE, url)
    assert by_listing.id == first.id
    loaded = await removals.load_request(settings, first.id)
    assert loaded.listing_url == url and loaded.person == PERSON
    assert url not in repr(loaded) and "Zebulon" not in repr(loaded)


async def test_transitions_allowed_and_refused(settings, owner):
    _, finding_id, _ = await found(settings, owner)
    request = await removals.request_removal(settings, owner, finding_id)

    async def move(to, **columns):
        async def work(conn):
            return await removals.transition(conn, request.id, to, detail={"reason": "test"}, **columns)

        from crawler.db.pool import run_in_transaction

        return await run_in_transaction(settings, work)

    with pytest.raises(removals.TransitionRefused):
        await move("removed")
    with pytest.raises(removals.TransitionRefused):
        await move("confirmed")
    with pytest.raises(ValueError):
        await move("submitted", status="x")
    await move("submitted")
    await move("confirmed")
    await removal_flow.mark_removed(settings, request.id)
    with pytest.raises(removals.TransitionRefused):
        await move("requested")
    assert [h[1] for h in history(settings, request.id)] == ["requested", "submitted", "confirmed", "removed"]
    assert finding_statuses(settings, (await removals.get_request(settings, request.id)).scan_id) == {"removed"}


async def test_begin_submission_is_exactly_once_under_concurrency(settings, owner):
    _, finding_id, _ = await found(settings, owner)
    request = await removals.request_removal(settings, owner, finding_id)
    results = await asyncio.gather(*(removal_flow.begin_submission(settings, request.id, 1, 2) for _ in range(12)))
    assert results.count(True) == 1
    assert not await removal_flow.begin_submission(settings, request.id, 2, 2)  # not this attempt
    # the crawl died before the answer: unknown, goes on after the step, never begins again
    loaded = await removals.load_request(settings, request.id)
    assert loaded.submission == "unknown" and loaded.status == "submitted" and loaded.step == 3
    assert not await removal_flow.begin_submission(settings, request.id, 1, 2)
    await removal_flow.finish_submission(settings, request.id, 1, "sent")  # late answer: ignored
    assert (await removals.get_request(settings, request.id)).submission == "unknown"


async def test_finish_submission_sent_and_none(settings, owner):
    _, finding_id, _ = await found(settings, owner)
    request = await removals.request_removal(settings, owner, finding_id)
    assert await removal_flow.begin_submission(settings, request.id, 1, 1)
    await removal_flow.finish_submission(settings, request.id, 1, "none")  # never left: may be tried again
    assert (await removals.get_request(settings, request.id)).submission == "none"
    assert await removal_flow.begin_submission(settings, request.id, 1, 1)
    await removal_flow.finish_submission(settings, request.id, 1, "sent")
    after = await removals.get_request(settings, request.id)
    assert (after.status, after.submission, after.step) == ("submitted", "sent", 2)
    assert after.submitted_at is not None


async def test_step_failed_backs_off_then_fails(settings, owner):
    _, finding_id, _ = await found(settings, owner)
    request = await removals.request_removal(settings, owner, finding_id)
    waits = []
    for _ in range(3):
        before = rows(settings, "SELECT now()")[0][0]
        status = await removal_flow.step_failed(settings, request.id, "http 503", 2.0, 0.5, max_failures=4)
        assert status == "requested"
        after = await removals.get_request(settings, request.id)
        waits.append(after.next_action_at - before)
    for wait, hours in zip(waits, (0.5, 1.0, 2.0), strict=True):
        assert timedelta(hours=hours) - timedelta(seconds=5) < wait <= timedelta(hours=hours) + timedelta(seconds=5)
    assert removal_flow.backoff(10, 0.5, 2.0) == timedelta(hours=2)
    assert await removal_flow.step_failed(settings, request.id, "http 503", 2.0, 0.5, max_failures=4) == "failed"
    failed = await removals.get_request(settings, request.id)
    assert failed.reason == "http 503" and failed.next_action_at is None
    assert request.id not in await removals.due_requests(settings, 100)


async def test_task_done_resumes_the_flow(settings, owner):
    _, finding_id, _ = await found(settings, owner)
    request = await removals.request_removal(settings, owner, finding_id)
    task = await removal_flow.create_task(
        settings, request.id, "captcha", "Solve the CAPTCHA and submit the form", "http://x/removal", 1, 3, True
    )
    assert task is not None
    assert await removal_flow.create_task(settings, request.id, "other", "x", None, 1, 2) is None  # one open task
    assert (await removals.get_request(settings, request.id)).status == "needs_human"
    assert request.id not in await removals.due_requests(settings, 100)
    assert not await removal_flow.complete_task(settings, "someone-else", task)
    assert await removal_flow.complete_task(settings, owner, task)
    assert not await removal_flow.complete_task(settings, owner, task)  # done once
    after = await removals.get_request(settings, request.id)
    assert (after.status, after.step, after.submission) == ("submitted", 3, "sent")
    assert request.id in await removals.due_requests(settings, 1000)


async def test_verification_new_attempt_then_failed(settings, owner):
    _, finding_id, _ = await found(settings, owner)
    request = await removals.request_removal(settings, owner, finding_id)
    assert await removal_flow.begin_submission(settings, request.id, 1, 0)
    await removal_flow.finish_submission(settings, request.id, 1, "sent")
    assert await removal_flow.verification_failed(settings, request.id) == "requested"
    second = await removals.get_request(settings, request.id)
    assert (second.attempt, second.step, second.submission) == (2, 0, "none")
    assert await removal_flow.begin_submission(settings, request.id, 2, 0)
    await removal_flow.finish_submission(settings, request.id, 2, "sent")
    assert await removal_flow.verification_failed(settings, request.id) == "failed"
    assert (await removals.get_request(settings, request.id)).reason == "still listed after 2 attempts"


async def test_reconcile_scan_reappearance(settings, owner):
    _, finding_id, url = await found(settings, owner)
    request = await removals.request_removal(settings, owner, finding_id)
    assert await removal_flow.begin_submission(settings, request.id, 1, 0)
    await removal_flow.finish_submission(settings, request.id, 1, "sent")
    stale, _, _ = await found(settings, owner, url)  # read the listing before the removal was verified
    await removal_flow.mark_removed(settings, request.id)
    # a scan that finishes after the removal but read the listing before it: no reappearance
    assert await removals.reconcile_scan(settings, stale) == {"reappeared": 0, "requested": 0}
    assert (await removals.get_request(settings, request.id)).status == "removed"
    # a re-scan that does not find it: nothing happens
    other_scan, _, _ = await found(settings, owner)
    assert await removals.reconcile_scan(settings, other_scan) == {"reappeared": 0, "requested": 0}
    # a re-scan that finds it again: reappeared, a new attempt on the newest scan
    rescan, _, _ = await found(settings, owner, url)
    assert await removals.reconcile_scan(settings, rescan) == {"reappeared": 1, "requested": 1}
    after = await removals.get_request(settings, request.id)
    assert (after.status, after.attempt, after.scan_id) == ("requested", 2, rescan)
    assert after.reference != request.reference  # its own address tag: mail to the first attempt never counts
    assert [h[1] for h in history(settings, request.id)][-2:] == ["reappeared", "requested"]
    assert (await removals.load_request(settings, request.id)).listing_url == url
    # removed again, found again at the maximum: failed
    assert await removal_flow.begin_submission(settings, request.id, 2, 0)
    await removal_flow.finish_submission(settings, request.id, 2, "sent")
    await removal_flow.mark_removed(settings, request.id)
    third, _, _ = await found(settings, owner, url)
    assert await removals.reconcile_scan(settings, third) == {"reappeared": 1, "requested": 0}
    final = await removals.get_request(settings, request.id)
    assert final.status == "failed" and final.reason == "reappeared after 2 attempts"
    assert finding_statuses(settings, third) == {"reappeared"}
