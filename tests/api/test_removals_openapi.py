"""The removal routes' real bodies (a request with history and a task, a review) match /openapi.json
(the fuzzer's random ids mostly meet 404s)."""

import uuid

import pytest
import schemathesis
from api_client import PERSON, write_listing
from removal_seed import listing, review_candidate, with_task
from starlette.testclient import TestClient

from crawler.api.app import create_app
from crawler.store.keys import create_key

pytestmark = pytest.mark.integration


def test_removal_bodies_match_the_document(api_settings):
    app = create_app(api_settings)
    headers = {"Authorization": f"Bearer {create_key(api_settings, f'doc-{uuid.uuid4().hex[:8]}')}"}
    with TestClient(app) as client:
        scan_id = client.post("/api/scans", json={"person": PERSON}, headers=headers).json()["id"]
        finding = write_listing(api_settings, scan_id, "truepeople", listing("doc"))[0]
        removal = client.delete(f"/api/findings/{finding}", headers=headers)
        assert removal.status_code == 202
        task_id = client.portal.call(with_task, api_settings, removal.json()["id"])
        candidate_id, _ = review_candidate(api_settings, scan_id, "fastpeople", age=40)
        loaded = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
        for method, path, template, body in (
            ("DELETE", f"/api/findings/{finding}", "/api/findings/{finding_id}", None),
            ("GET", "/api/removals", "/api/removals", None),
            ("GET", f"/api/removals/{removal.json()['id']}", "/api/removals/{removal_id}", None),
            ("GET", "/api/tasks", "/api/tasks", None),
            ("POST", f"/api/tasks/{task_id}/done", "/api/tasks/{task_id}/done", None),
            ("GET", "/api/reviews", "/api/reviews", None),
            ("POST", f"/api/reviews/{candidate_id}", "/api/reviews/{review_id}", {"answer": "yes"}),
            ("POST", f"/api/tasks/{task_id}/done", "/api/tasks/{task_id}/done", None),  # 409 now
        ):
            response = client.request(method, path, headers=headers, json=body)
            assert response.status_code < 500, (path, response.text)
            loaded[template][method].validate_response(response)
        assert response.status_code == 409
