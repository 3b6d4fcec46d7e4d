"""``/api/heals`` against the real PostgreSQL (a database per test: accepting a heal of a real site's YAML
makes it the version every crawl of that YAML reads with). Quarantined versions are recorded by
crawler.healing.versions.record; their listings wait in held_findings. Accept moves them into findings,
reject deletes them; only operators' keys (API_OPERATORS) may see or decide, others get 403."""

from __future__ import annotations

import pytest
from api_client import Api, write_listing
from heal_seed import SITE, findings_of, held_rows, hold, quarantined, site_yaml
from removal_seed import listing

pytestmark = pytest.mark.integration

OPERATOR = "heal-operator"


@pytest.fixture
async def heal_api(api_settings, own_database_url):
    settings = api_settings.copy()
    settings.setdict({"DATABASE_URL": own_database_url, "API_OPERATORS": f"someone-else, {OPERATOR}"}, "cmdline")
    client = Api(settings)
    client.user(OPERATOR)
    yield client
    await client.aclose()


async def held_heal(api: Api, owner: str):
    """A quarantined heal holding one listing (name and phone: two findings) of owner's scan."""
    url = api.settings["DATABASE_URL"]
    scan_id = await api.start_scan(owner)
    ids = write_listing(api.settings, scan_id, SITE, listing(1))
    version = await quarantined(url)
    hold(url, ids, version)
    return version, scan_id, len(ids)


def error_of(response, status: int, code: str):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


async def test_pending_heals_list_with_provenance_and_the_diff_against_the_yaml(heal_api):
    version, _, held = await held_heal(heal_api, heal_api.user())
    response = await heal_api.get(OPERATOR, "/api/heals")
    assert response.status_code == 200, response.text
    heals = response.json()["heals"]
    assert [h["id"] for h in heals] == [version.id]
    heal = heals[0]
    assert heal["site"] == SITE and heal["status"] == "quarantined" and heal["origin"] == "heuristic"
    assert heal["confidence"] == pytest.approx(0.62, abs=1e-3)
    assert heal["fields"] == ["detail.age"] and heal["pages"] == 2 and heal["held"] == held == 2
    assert heal["changes"]["detail.age"]["score"] == pytest.approx(0.81)
    assert heal["sha256"] == version.sha256[:12] and heal["parent"] == site_yaml().sha256[:12]
    assert heal["base"] == f"spiders/sites/{SITE}.yaml" and heal["base_changed"] is False
    assert heal["decided_at"] is None and heal["decided_by"] is None
    diff = heal["diff"].splitlines()
    assert diff[0] == f"--- spiders/sites/{SITE}.yaml"
    assert diff[1] == f"+++ version {version.id} (heuristic, quarantined)"
    new_selector = version.definition["detail"]["fields"]["age"]["css"]
    assert any(line.startswith("+") and new_selector in line for line in diff)
    assert any(line.startswith("-") and "years old" in line for line in diff)  # the old regex branch
    assert not any(line.startswith(("+", "-")) and "full_name" in line for line in diff)  # only what changed

    one = await heal_api.get(OPERATOR, f"/api/heals/{version.id}")
    assert one.status_code == 200 and one.json() == heal
    # the filter: pending is quarantined; all shows every status; another site shows none
    for query, ids in (
        ("?status=quarantined", [version.id]),
        ("?status=active", []),
        ("?status=all", [version.id]),
        ("?site=radaris", []),
    ):
        found = await heal_api.get(OPERATOR, f"/api/heals{query}")
        assert [h["id"] for h in found.json()["heals"]] == ids, query


async def test_accept_moves_the_held_findings_into_findings(heal_api):
    owner = heal_api.user()
    version, scan_id, held = await held_heal(heal_api, owner)
    url = heal_api.settings["DATABASE_URL"]
    before = await heal_api.get(owner, f"/api/scans/{scan_id}/findings")
    assert before.json()["listings"] == []  # held: not the owner's findings yet

    response = await heal_api.post(OPERATOR, f"/api/heals/{version.id}/accept")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["released"] == held
    assert body["heal"]["status"] == "active" and body["heal"]["decided_by"] == OPERATOR
    assert body["heal"]["decided_at"] and body["heal"]["held"] == 0
    assert held_rows(url, version) == 0 and findings_of(url, scan_id) == held
    after = (await heal_api.get(owner, f"/api/scans/{scan_id}/findings")).json()["listings"]
    assert [(item["site"], sorted(d["type"] for d in item["data"])) for item in after] == [(SITE, ["name", "phone"])]
    assert (await heal_api.get(OPERATOR, "/api/heals")).json()["heals"] == []  # nothing pending any more

    again = await heal_api.post(OPERATOR, f"/api/heals/{version.id}/accept")
    assert "is active" in error_of(again, 409, "conflict")["message"]


async def test_accepting_a_heal_accepts_the_quarantined_heals_it_builds_on(heal_api):
    owner = heal_api.user()
    url = heal_api.settings["DATABASE_URL"]
    parent, scan_id, parent_held = await held_heal(heal_api, owner)
    child = await quarantined(url, parent=parent)
    ids = write_listing(heal_api.settings, scan_id, SITE, listing(2))
    hold(url, ids, child)
    assert child.parent_sha256 == parent.sha256

    response = await heal_api.post(OPERATOR, f"/api/heals/{child.id}/accept")
    assert response.status_code == 200, response.text
    assert response.json()["released"] == parent_held + len(ids)
    assert findings_of(url, scan_id) == parent_held + len(ids)
    ancestor = (await heal_api.get(OPERATOR, f"/api/heals/{parent.id}")).json()
    assert ancestor["decided_by"] == OPERATOR and ancestor["held"] == 0
    assert ancestor["status"] in ("active", "superseded")  # the child is what crawls read with
    assert (await heal_api.get(OPERATOR, "/api/heals")).json()["heals"] == []


async def test_reject_deletes_the_held_findings(heal_api):
    owner = heal_api.user()
    version, scan_id, held = await held_heal(heal_api, owner)
    url = heal_api.settings["DATABASE_URL"]

    response = await heal_api.post(OPERATOR, f"/api/heals/{version.id}/reject")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deleted"] == held
    assert body["heal"]["status"] == "rejected" and body["heal"]["decided_by"] == OPERATOR
    assert held_rows(url, version) == 0 and findings_of(url, scan_id) == 0
    assert (await heal_api.get(owner, f"/api/scans/{scan_id}/findings")).json()["listings"] == []

    again = await heal_api.post(OPERATOR, f"/api/heals/{version.id}/reject")
    assert "already rejected" in error_of(again, 409, "conflict")["message"]
    # a person may change their mind: a rejected heal can still be accepted (nothing is left to release)
    accepted = await heal_api.post(OPERATOR, f"/api/heals/{version.id}/accept")
    assert accepted.status_code == 200 and accepted.json()["released"] == 0


async def test_a_scan_owners_key_gets_403_and_no_key_401(heal_api):
    owner = heal_api.user()
    version, _, held = await held_heal(heal_api, owner)
    for method, path in (
        ("GET", "/api/heals"),
        ("GET", f"/api/heals/{version.id}"),
        ("POST", f"/api/heals/{version.id}/accept"),
        ("POST", f"/api/heals/{version.id}/reject"),
    ):
        error_of(await heal_api.request(method, owner, path), 403, "forbidden")
        error_of(await heal_api.request(method, None, path), 401, "unauthorized")
    # nothing was decided
    assert held_rows(heal_api.settings["DATABASE_URL"], version) == held
    assert (await heal_api.get(OPERATOR, f"/api/heals/{version.id}")).json()["status"] == "quarantined"


async def test_no_operators_configured_means_nobody_may_decide(api_settings, own_database_url):
    settings = api_settings.copy()
    settings.setdict({"DATABASE_URL": own_database_url, "API_OPERATORS": ""}, "cmdline")
    api = Api(settings)
    try:
        user = api.user(OPERATOR)
        error_of(await api.get(user, "/api/heals"), 403, "forbidden")
    finally:
        await api.aclose()


async def test_unknown_ids_are_404_and_bad_ids_422(heal_api):
    for method, path in (
        ("GET", "/api/heals/987654"),
        ("POST", "/api/heals/987654/accept"),
        ("POST", "/api/heals/987654/reject"),
    ):
        assert "heal" in error_of(await heal_api.request(method, OPERATOR, path), 404, "not_found")["message"]
    error_of(await heal_api.get(OPERATOR, "/api/heals/0"), 422, "invalid")
    error_of(await heal_api.get(OPERATOR, "/api/heals?status=maybe"), 422, "invalid")


async def test_a_yaml_edited_since_the_heal_is_flagged(heal_api):
    version = await quarantined(heal_api.settings["DATABASE_URL"], base_sha256="0" * 64)
    heal = (await heal_api.get(OPERATOR, f"/api/heals/{version.id}")).json()
    assert heal["base_changed"] is True and heal["diff"].startswith(f"--- spiders/sites/{SITE}.yaml")


async def test_heal_bodies_match_the_openapi_document(heal_api):
    """The fuzzer (test_openapi_fuzz) holds a plain key: it meets 403s. Here an operator's real bodies."""
    import schemathesis

    version, _, _ = await held_heal(heal_api, heal_api.user())
    other = await quarantined(heal_api.settings["DATABASE_URL"])
    owner = heal_api.user()
    loaded = schemathesis.openapi.from_dict((await heal_api.http.get("/openapi.json")).json())
    for user, method, path, template, status in (
        (OPERATOR, "GET", "/api/heals", "/api/heals", 200),
        (OPERATOR, "GET", f"/api/heals/{version.id}", "/api/heals/{heal_id}", 200),
        (OPERATOR, "POST", f"/api/heals/{version.id}/accept", "/api/heals/{heal_id}/accept", 200),
        (OPERATOR, "POST", f"/api/heals/{version.id}/accept", "/api/heals/{heal_id}/accept", 409),
        (OPERATOR, "POST", f"/api/heals/{other.id}/reject", "/api/heals/{heal_id}/reject", 200),
        (OPERATOR, "POST", "/api/heals/987654/reject", "/api/heals/{heal_id}/reject", 404),
        (owner, "GET", "/api/heals", "/api/heals", 403),
    ):
        response = await heal_api.request(method, user, path)
        assert response.status_code == status, (path, response.text)
        loaded[template][method].validate_response(response)
