"""Removal requests, human tasks and "is this you?" through the API, against the real PostgreSQL:
owner-scoped (another user's is a 404 like a missing one), idempotent, paged, with history, and the
optout crawl queued for the worker when a request is made or a task is done."""

from __future__ import annotations

import psycopg
import pytest
from api_client import write_listing
from prometheus_client.parser import text_string_to_metric_families
from removal_seed import CAPTCHA_TEXT, CAPTCHA_URL, listing, review_candidate, submitted, with_task

from crawler.security import context
from crawler.store import removal_flow
from support import crawl_keyring

pytestmark = pytest.mark.integration


def rows(settings, sql, *params):
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def optout_jobs(settings) -> int:
    return rows(settings, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'run_optout' AND status = 'todo'")[
        0
    ][0]


def clear_optout_jobs(settings) -> None:
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("DELETE FROM procrastinate_jobs WHERE task_name = 'run_optout' AND status = 'todo'")


@pytest.fixture
def no_waiting_optout(api_settings):
    """The session's database is shared: start without a queued optout job (the queueing lock)."""
    clear_optout_jobs(api_settings)


async def test_delete_creates_one_request_per_listing_and_queues_the_optout_crawl(api, no_waiting_optout):
    owner, other = api.user(), api.user()
    scan_id = await api.start_scan(owner)
    ids = write_listing(api.settings, scan_id, "fastpeople", listing(1))
    untouched = write_listing(api.settings, scan_id, "radaris", listing(2))

    first = await api.delete(owner, f"/api/findings/{ids[1]}")
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["status"] == "requested" and body["site"] == "fastpeople" and body["attempt"] == 1
    assert body["listing_id"] == min(ids) and body["url"] == listing(1)["listing_url"]
    assert body["scan_id"] == scan_id and body["task"] is None
    assert [(e["from_status"], e["to_status"]) for e in body["history"]] == [(None, "requested")]
    assert optout_jobs(api.settings) == 1

    # idempotent: any finding of the listing, any number of times -> the same request
    for finding_id in ids:
        again = await api.delete(owner, f"/api/findings/{finding_id}")
        assert again.status_code == 202 and again.json()["id"] == body["id"]
    assert optout_jobs(api.settings) == 1  # one waiting optout crawl at most
    assert rows(api.settings, "SELECT count(*) FROM removal_requests WHERE owner = %s", owner) == [(1,)]
    statuses = dict(rows(api.settings, "SELECT id, status FROM findings WHERE scan_id = %s", scan_id))
    assert {statuses[i] for i in ids} == {"removal_requested"} and {statuses[i] for i in untouched} == {"found"}

    foreign = await api.delete(other, f"/api/findings/{ids[0]}")
    missing = await api.delete(other, "/api/findings/999999999")
    assert foreign.status_code == missing.status_code == 404 and foreign.json() == missing.json()
    assert (await api.get(other, f"/api/removals/{body['id']}")).status_code == 404
    assert (await api.get(other, "/api/removals")).json()["removals"] == []


async def test_removals_list_with_history_status_filter_and_pages(api):
    owner = api.user()
    scan_id = await api.start_scan(owner)
    made = []
    for n in range(5):
        finding = write_listing(api.settings, scan_id, "fastpeople", listing(f"p{n}"))[0]
        made.append((await api.delete(owner, f"/api/findings/{finding}")).json()["id"])
    await submitted(api.settings, made[0])
    await removal_flow.mark_removed(api.settings, made[0])

    one = (await api.get(owner, f"/api/removals/{made[0]}")).json()
    assert one["status"] == "removed" and one["removed_at"] and one["submitted_at"]
    assert [(e["from_status"], e["to_status"]) for e in one["history"]] == [
        (None, "requested"),
        ("requested", "submitted"),
        ("submitted", "removed"),
    ]
    assert one["history"][1]["detail"]["outcome"] == "sent"

    seen, cursor = [], None
    while True:
        page = await api.get(owner, "/api/removals", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200
        seen += [r["id"] for r in page.json()["removals"]]
        if (cursor := page.json()["next_cursor"]) is None:
            break
    assert seen == sorted(made, reverse=True)
    removed = (await api.get(owner, "/api/removals", params={"status": "removed"})).json()["removals"]
    assert [r["id"] for r in removed] == [made[0]]
    for bad in ({"cursor": "nope"}, {"status": "gone"}, {"limit": 0}):
        response = await api.get(owner, "/api/removals", params=bad)
        assert response.status_code == 422 and response.json()["error"]["field"] in bad


def db_reference(settings, request_id: int) -> str:
    import psycopg

    from crawler.db.embedded import database_url

    with psycopg.connect(database_url(settings)) as conn:
        return conn.execute("SELECT reference FROM removal_requests WHERE id = %s", (request_id,)).fetchone()[0]


async def test_tasks_list_and_done_resume_the_flow(api, no_waiting_optout):
    owner, other = api.user(), api.user()
    scan_id = await api.start_scan(owner)
    finding = write_listing(api.settings, scan_id, "truepeople", listing("t"))[0]
    request_id = (await api.delete(owner, f"/api/findings/{finding}")).json()["id"]
    task_id = await with_task(api.settings, request_id)
    clear_optout_jobs(api.settings)

    tasks = (await api.get(owner, "/api/tasks")).json()["tasks"]
    assert tasks == [
        {
            "id": task_id,
            "removal_id": request_id,
            "kind": "captcha",
            "instructions": CAPTCHA_TEXT,
            "url": CAPTCHA_URL,
            "created_at": tasks[0]["created_at"],
            "done_at": None,
            "site": "truepeople",
            "listing_url": listing("t")["listing_url"],
            "email": tasks[0]["email"],
            "removal_status": "needs_human",
        }
    ]
    # the address to give the broker is this request's own: its confirmation e-mail is matched to it
    reference = db_reference(api.settings, request_id)
    local, domain = api.settings.get("REMOVAL_EMAIL").split("@")
    assert tasks[0]["email"] == f"{local}+{reference}@{domain}"
    shown = (await api.get(owner, f"/api/removals/{request_id}")).json()
    assert shown["status"] == "needs_human" and shown["task"]["id"] == task_id
    assert (await api.get(other, "/api/tasks")).json()["tasks"] == []
    assert (await api.post(other, f"/api/tasks/{task_id}/done")).status_code == 404

    done = await api.post(owner, f"/api/tasks/{task_id}/done")
    assert done.status_code == 200, done.text
    removal = done.json()["removal"]
    # the person submitted the CAPTCHA form: the flow goes on after that submission, now
    assert removal["status"] == "submitted" and removal["task"] is None and removal["step"] == 2
    assert removal["history"][-1]["detail"]["reason"] == "task_done"
    assert optout_jobs(api.settings) == 1
    assert (await api.get(owner, "/api/tasks")).json()["tasks"] == []
    again = await api.post(owner, f"/api/tasks/{task_id}/done")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    assert (await api.post(owner, "/api/tasks/999999999/done")).status_code == 404


async def test_reviews_yes_makes_findings_that_can_be_removed(api):
    owner, other = api.user(), api.user()
    scan_id = await api.start_scan(owner)
    candidate_id, item = review_candidate(
        api.settings, scan_id, "fastpeople", phones=["+13125550199"], addresses=["1 Elm St, Springfield, IL"], age=41
    )
    shown = (await api.get(owner, "/api/reviews")).json()["reviews"]
    assert [r["id"] for r in shown] == [candidate_id]
    assert shown[0]["url"] == item.listing_url and shown[0]["confidence"] == pytest.approx(0.7)
    assert shown[0]["data"] == [
        {"type": "name", "value": "Jane Q. Doe"},
        {"type": "phone", "value": "+13125550199"},
        {"type": "address", "value": "1 Elm St, Springfield, IL"},
        {"type": "age", "value": "41"},
    ]
    assert (await api.get(other, "/api/reviews")).json()["reviews"] == []
    assert (await api.post(other, f"/api/reviews/{candidate_id}", json={"answer": "yes"})).status_code == 404
    bad = await api.post(owner, f"/api/reviews/{candidate_id}", json={"answer": "maybe"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "answer"

    yes = await api.post(owner, f"/api/reviews/{candidate_id}", json={"answer": "yes"})
    assert yes.status_code == 200, yes.text
    listing_id = yes.json()["listing_id"]
    assert yes.json() == {"id": candidate_id, "answer": "yes", "listing_id": listing_id}
    found = (await api.get(owner, f"/api/scans/{scan_id}/findings")).json()["listings"]
    assert [(f["id"], f["url"], f["evidence"]["review"]) for f in found] == [(listing_id, item.listing_url, "yes")]
    assert {d["type"] for d in found[0]["data"]} == {"name", "phone", "address", "age"}
    assert (await api.get(owner, "/api/reviews")).json()["reviews"] == []
    # the sealed review copy is gone once answered; asking again is a 404 (nothing to answer)
    assert rows(api.settings, "SELECT review_ciphertext FROM rejected_candidates WHERE id = %s", candidate_id) == [
        (None,)
    ]
    assert (await api.post(owner, f"/api/reviews/{candidate_id}", json={"answer": "no"})).status_code == 404
    removal = await api.delete(owner, f"/api/findings/{listing_id}")
    assert removal.status_code == 202 and removal.json()["url"] == item.listing_url


async def test_reviews_no_is_recorded_and_never_asked_again(api):
    owner = api.user()
    first_scan = await api.start_scan(owner)
    url = "http://127.0.0.1:9/maybe/not-me"
    candidate_id, _ = review_candidate(api.settings, first_scan, "radaris", url)
    no = await api.post(owner, f"/api/reviews/{candidate_id}", json={"answer": "no"})
    assert no.status_code == 200 and no.json() == {"id": candidate_id, "answer": "no", "listing_id": None}
    index = crawl_keyring().blind_index(url)
    assert rows(
        api.settings,
        "SELECT decision FROM listing_reviews WHERE owner = %s AND website_id = 'radaris' AND listing_url_index = %s",
        owner,
        index,
    ) == [("no",)]
    assert rows(api.settings, "SELECT count(*) FROM findings WHERE scan_id = %s", first_scan) == [(0,)]
    # a later scan's copy of the same listing (written before the pipeline knew) is not asked either
    later_scan = await api.start_scan(owner)
    later_id, _ = review_candidate(api.settings, later_scan, "radaris", url)
    assert (await api.get(owner, "/api/reviews")).json()["reviews"] == []
    late = await api.post(owner, f"/api/reviews/{later_id}", json={"answer": "yes"})
    assert late.status_code == 409 and late.json()["error"]["message"] == "this listing was answered already"
    assert rows(api.settings, "SELECT count(*) FROM findings WHERE scan_id = %s", later_scan) == [(0,)]


async def test_review_copy_is_sealed_to_its_row(api):
    owner = api.user()
    scan_id = await api.start_scan(owner)
    candidate_id, item = review_candidate(api.settings, scan_id, "fastpeople", emails=["jqd@example.org"])
    sealed = bytes(
        rows(api.settings, "SELECT review_ciphertext FROM rejected_candidates WHERE id = %s", candidate_id)[0][0]
    )
    for value in (item.full_name, item.listing_url, "jqd@example.org"):
        assert value.encode() not in sealed
    ring = crawl_keyring()
    assert b"jqd@example.org" in ring.decrypt(sealed, context.rejected_review(scan_id))
    with pytest.raises(Exception):  # noqa: B017 - bound to its scan: another row's context fails
        ring.decrypt(sealed, context.rejected_review("00000000-0000-0000-0000-000000000000"))


async def test_metrics_show_removals_by_state_and_site_tasks_and_reappearances(api):
    owner = api.user()
    scan_id = await api.start_scan(owner)
    made = []
    for n, site in enumerate(("fastpeople", "fastpeople", "truepeople")):
        finding = write_listing(api.settings, scan_id, site, listing(f"m{n}"))[0]
        made.append((await api.delete(owner, f"/api/findings/{finding}")).json()["id"])
    await submitted(api.settings, made[0])
    await removal_flow.mark_removed(api.settings, made[0])
    await with_task(api.settings, made[2])
    response = await api.get(owner, "/metrics")
    assert response.status_code == 200
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }

    def value(name, **labels):
        return samples.get((name, tuple(sorted(labels.items()))))

    # the session's database is shared with other tests: at least these
    assert value("removal_requests", state="removed", site="fastpeople") >= 1
    assert value("removal_requests", state="requested", site="fastpeople") >= 1
    assert value("removal_requests", state="needs_human", site="truepeople") >= 1
    assert value("removal_removed", site="fastpeople") >= 1
    assert value("removal_time_to_removal_seconds", site="fastpeople", stat="0.5") >= 0
    assert value("removal_tasks_open", kind="captcha", site="truepeople") >= 1
    assert 0 <= value("removal_reappearance_ratio") <= 1
