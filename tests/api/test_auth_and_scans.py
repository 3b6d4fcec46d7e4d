"""Keys, isolation between users, creating scans (validation, idempotency), listing and cancelling."""

import uuid

import psycopg
import pytest
from api_client import PERSON

from crawler.security.context import scan_target
from support import crawl_keyring

pytestmark = pytest.mark.integration


async def test_every_api_route_needs_a_valid_key(api):
    user = api.user()
    scan_id = await api.start_scan(user)
    routes = [
        ("GET", "/api/scans"),
        ("POST", "/api/scans"),
        ("GET", f"/api/scans/{scan_id}"),
        ("POST", f"/api/scans/{scan_id}/cancel"),
        ("GET", f"/api/scans/{scan_id}/events"),
        ("GET", f"/api/scans/{scan_id}/findings"),
        ("GET", "/api/findings/1/screenshot"),
        ("DELETE", "/api/findings/1"),
        ("GET", "/api/stats"),
        ("GET", "/metrics"),
    ]
    for headers in ({}, {"Authorization": "Bearer csk_not-a-key"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        for method, path in routes:
            response = await api.http.request(method, path, headers=headers, json={"person": PERSON})
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["error"]["code"] == "unauthorized"
            assert response.headers["www-authenticate"] == "Bearer"
    health = await api.http.get("/health")
    assert health.status_code == 200 and health.json()["database"] == "ok"


async def test_a_revoked_key_is_refused_at_once(api):
    from crawler.store.keys import list_keys, revoke_key

    user = api.user()
    assert (await api.get(user, "/api/scans")).status_code == 200
    (key,) = list_keys(api.settings, user)
    assert key.last_used_at is not None and key.revoked_at is None
    assert revoke_key(api.settings, key.prefix) == 1
    response = await api.get(user, "/api/scans")
    assert response.status_code == 401
    assert response.json()["error"]["message"] == "the API key is not valid or was revoked"


async def test_users_see_only_their_own_scans(api):
    alice, bob = api.user(), api.user()
    scan_id = await api.start_scan(alice)
    missing = str(uuid.uuid4())
    for path in (f"/api/scans/{scan_id}", f"/api/scans/{scan_id}/findings", f"/api/scans/{scan_id}/events"):
        foreign, absent = await api.get(bob, path), await api.get(bob, path.replace(scan_id, missing))
        assert foreign.status_code == absent.status_code == 404
        assert foreign.json() == absent.json()
    foreign = await api.post(bob, f"/api/scans/{scan_id}/cancel")
    assert foreign.status_code == 404 and foreign.json() == (await api.post(bob, f"/api/scans/{missing}/cancel")).json()
    assert (await api.get(bob, "/api/scans")).json()["scans"] == []
    mine = await api.get(alice, f"/api/scans/{scan_id}")
    assert mine.status_code == 200 and mine.json()["status"] == "pending"


async def test_a_scan_is_stored_encrypted_with_its_job_and_answered_pending(api, db):
    user = api.user()
    person = {**PERSON, "emails": ["Jane.Doe@Example.org"], "phones": ["312-555-0100"]}
    response = await api.post(user, "/api/scans", json={"person": person, "sites": ["fastpeople"], "priority": "high"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    row = db.execute(
        "SELECT owner, priority, sites, target_ciphertext, job_id, status FROM scans WHERE id = %s", (body["id"],)
    ).fetchone()
    owner, priority, sites, ciphertext, job_id, status = row
    assert (owner, priority, sites, status) == (user, "high", ["fastpeople"], "pending")
    assert b"Doe" not in bytes(ciphertext)
    assert b"jane.doe@example.org" in crawl_keyring().decrypt(ciphertext, scan_target(body["id"]))
    job = db.execute("SELECT task_name, queue_name, priority, args FROM procrastinate_jobs WHERE id = %s", (job_id,))
    assert job.fetchone() == ("run_scan", "scans", 100, {"scan_id": body["id"]})
    detail = (await api.get(user, f"/api/scans/{body['id']}")).json()
    assert detail["person"]["emails"] == ["jane.doe@example.org"] and detail["person"]["phones"] == ["+13125550100"]
    assert detail["priority"] == "high" and [p["site"] for p in detail["progress"]] == ["fastpeople"]


async def test_sites_default_to_every_enabled_site(api):
    from spiders.scan import ScanSpider

    user = api.user()
    scan_id = await api.start_scan(user)
    detail = (await api.get(user, f"/api/scans/{scan_id}")).json()
    assert sorted(detail["sites"]) == sorted(ScanSpider.site_definitions(api.settings))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"person": {"last_name": "Doe"}}, "person.first_name"),
        ({"person": {**PERSON, "first_name": "J4ne<script>"}}, "person.first_name"),
        ({"person": {**PERSON, "state": "ZZ"}}, "person.state"),
        ({"person": {**PERSON, "age": 7}}, "person.age"),
        ({"person": {**PERSON, "emails": ["not-an-address"]}}, "person.emails"),
        ({"person": {**PERSON, "phones": ["12"]}}, "person.phones[0]"),
        ({"person": {**PERSON, "phones": ["555-0100-555-0100-999"]}}, "person.phones"),
        ({"person": {**PERSON, "nickname": "JD"}}, "person.nickname"),
        ({"person": PERSON, "sites": ["nowhere"]}, "sites[0]"),
        ({"person": PERSON, "priority": "urgent"}, "priority"),
        ({}, "person"),
    ],
)
async def test_invalid_requests_name_the_field_and_never_echo_the_value(api, body, field):
    user = api.user()
    response = await api.post(user, "/api/scans", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["field"] == field
    for value in ("J4ne", "not-an-address", "555-0100", "nowhere", "urgent", "ZZ", "JD"):
        assert value not in response.text


async def test_a_body_that_is_not_json_is_a_422_and_a_huge_one_a_413(api):
    user = api.user()
    response = await api.post(user, "/api/scans", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid"
    huge = {"person": {**PERSON, "city": "x" * 70_000}}
    response = await api.post(user, "/api/scans", json=huge)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"

    async def chunks():  # no Content-Length: counted as it streams in
        yield b'{"person": {"first_name": "'
        for _ in range(20):
            yield b"a" * 8192
        yield b'"}}'

    response = await api.post(user, "/api/scans", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"


async def test_idempotency_key_returns_the_same_scan_and_refuses_another_body(api, db):
    user, other = api.user(), api.user()
    headers = {"Idempotency-Key": "order-42"}
    first = await api.post(user, "/api/scans", json={"person": PERSON}, headers=headers)
    again = await api.post(user, "/api/scans", json={"person": PERSON, "priority": "normal"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    jobs = db.execute("SELECT count(*) FROM procrastinate_jobs WHERE lock = %s", (first.json()["id"],)).fetchone()
    assert jobs == (1,)
    changed = await api.post(user, "/api/scans", json={"person": {**PERSON, "age": 43}}, headers=headers)
    assert changed.status_code == 409 and changed.json()["error"]["field"] == "Idempotency-Key"
    # another user's key space is their own
    theirs = await api.post(other, "/api/scans", json={"person": PERSON}, headers=headers)
    assert theirs.status_code == 202 and theirs.json()["id"] != first.json()["id"]
    without = await api.post(user, "/api/scans", json={"person": PERSON})
    assert without.json()["id"] != first.json()["id"]


async def test_pages_of_scans_walk_every_scan_once_newest_first_with_a_status_filter(api, db):
    user = api.user()
    created = [await api.start_scan(user) for _ in range(25)]
    # equal timestamps must not lose or repeat a scan: the id breaks ties
    with psycopg.connect(api.settings["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE scans SET created_at = '2030-01-01T00:00:00Z' WHERE id = ANY(%s)", (created[5:15],))
    cancelled = set(created[:7])
    for scan_id in cancelled:
        assert (await api.post(user, f"/api/scans/{scan_id}/cancel")).json()["status"] == "cancelled"

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        page = (await api.get(user, "/api/scans", params=params)).json()
        seen += [(s["created_at"], s["id"]) for s in page["scans"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 7 and len(seen) == 25 and {i for _, i in seen} == set(created)
    expected = db.execute(
        "SELECT id::text FROM scans WHERE owner = %s ORDER BY created_at DESC, id DESC", (user,)
    ).fetchall()
    assert [i for _, i in seen] == [r[0] for r in expected]

    filtered, cursor = [], None
    while True:
        params = {"limit": 3, "status": "cancelled", **({"cursor": cursor} if cursor else {})}
        page = (await api.get(user, "/api/scans", params=params)).json()
        filtered += [s["id"] for s in page["scans"]]
        assert all(s["status"] == "cancelled" for s in page["scans"])
        if (cursor := page["next_cursor"]) is None:
            break
    assert sorted(filtered) == sorted(cancelled)
    bad = await api.get(user, "/api/scans", params={"cursor": "garbage!"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"
    bad = await api.get(user, "/api/scans", params={"limit": 1000})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "limit"


async def test_cancel_a_pending_scan_cancels_its_job(api, db):
    user = api.user()
    scan_id = await api.start_scan(user)
    response = await api.post(user, f"/api/scans/{scan_id}/cancel")
    assert response.status_code == 200 and response.json() == {"id": scan_id, "status": "cancelled"}
    status, job_status, finished = db.execute(
        "SELECT s.status, j.status::text, s.finished_at FROM scans s JOIN procrastinate_jobs j ON j.id = s.job_id "
        "WHERE s.id = %s",
        (scan_id,),
    ).fetchone()
    assert (status, job_status) == ("cancelled", "cancelled") and finished is not None
    detail = (await api.get(user, f"/api/scans/{scan_id}")).json()
    assert detail["status"] == "cancelled" and detail["cancel_requested"] is True
    again = await api.post(user, f"/api/scans/{scan_id}/cancel")
    assert again.json()["status"] == "cancelled"
