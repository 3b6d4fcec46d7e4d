"""schemathesis over /openapi.json, authenticated: whatever it sends (valid and invalid requests), no
5xx, and every status, content type, header and body matches the document."""

import uuid

import pytest
import schemathesis
from api_client import PERSON, PNG, write_listing
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from crawler.api.app import create_app
from crawler.store.keys import create_key

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def fuzz_app(api_settings):
    return create_app(api_settings)


@pytest.fixture
def fuzz_key(api_settings):
    return create_key(api_settings, f"fuzz-{uuid.uuid4().hex[:8]}")


def document_app():
    """An app for the document alone (no service is touched to serve it); each call goes to the
    test's own app (``app=``). (schemathesis.pytest.from_fixture fails on pytest 9's nodes.)"""
    from scrapy.utils.project import get_project_settings

    settings = get_project_settings().copy()
    settings.set("REDIS_URL", "", priority="cmdline")
    return create_app(settings)


schema = schemathesis.openapi.from_asgi("/openapi.json", document_app())


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case, fuzz_app, fuzz_key):
    response = case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"}, checks=CHECKS, app=fuzz_app)
    assert response.status_code < 500


def test_the_document_describes_real_rows(api_settings, fuzz_app, fuzz_key):
    """The fuzzer's ids are random; one scan with findings makes the 200 bodies checked too."""
    from starlette.testclient import TestClient

    headers = {"Authorization": f"Bearer {fuzz_key}"}
    with TestClient(fuzz_app) as client:
        scan_id = client.post("/api/scans", json={"person": PERSON}, headers=headers).json()["id"]
        ids = write_listing(
            api_settings,
            scan_id,
            "fastpeople",
            {"listing_url": "http://127.0.0.1/p/1", "full_name": "Jane Doe", "phones": ["+13125550100"]},
            screenshot=PNG,
        )
        document = client.get("/openapi.json").json()
        loaded = schemathesis.openapi.from_dict(document)
        for method, path in (
            ("GET", f"/api/scans/{scan_id}"),
            ("GET", "/api/scans"),
            ("GET", f"/api/scans/{scan_id}/findings"),
            ("GET", "/api/stats"),
            ("DELETE", f"/api/findings/{ids[0]}"),
            ("POST", f"/api/scans/{scan_id}/cancel"),
        ):
            response = client.request(method, path, headers=headers)
            assert response.status_code < 300, (path, response.text)
            template = path.replace(scan_id, "{scan_id}").replace(f"/{ids[0]}", "/{finding_id}")
            operation = loaded[template][method]
            operation.validate_response(response)
