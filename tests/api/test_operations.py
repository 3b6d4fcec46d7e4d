"""Rate limits (Redis and in process), /health, /metrics, security headers, no personal value in
the log, and the keys CLI."""

import logging
import re
import subprocess
import sys

import pytest
from api_client import PERSON, Api

from crawler.db.pool import close_pools
from crawler.store.keys import authenticate
from support import ROOT

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("backend", ["redis", "process"])
async def test_rate_limit_per_key_answers_429_with_retry_after(api_settings, redis_settings, backend):
    settings = (redis_settings if backend == "redis" else api_settings).copy()
    settings.setdict({"API_RATE_LIMIT_PER_MINUTE": 6, "API_RATE_LIMIT_BURST": 3}, priority="cmdline")
    api = Api(settings)
    try:
        user, other = api.user(), api.user()
        statuses = [(await api.get(user, "/api/scans")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        limited = await api.get(user, "/api/scans")
        assert limited.status_code == 429
        assert limited.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(limited.headers["retry-after"]) <= 10
        assert (await api.get(other, "/api/scans")).status_code == 200  # per key
        assert (await api.http.get("/health")).status_code in (200, 503)  # no key, no limit
    finally:
        await api.aclose()


async def test_health_reports_database_redis_and_worker(redis_api, api_settings):
    response = await redis_api.http.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["redis"] == "ok"
    assert "worker_heartbeat_age_seconds" in body
    plain = Api(api_settings)
    try:
        assert (await plain.http.get("/health")).json()["redis"] == "not_configured"
    finally:
        await plain.aclose()

    broken = api_settings.copy()
    broken.setdict({"REDIS_URL": "redis://127.0.0.1:1/0"}, priority="cmdline")
    down = Api(broken)
    try:
        response = await down.http.get("/health")
        assert response.status_code == 503
        assert response.json()["redis"] == "error" and response.json()["status"] == "unavailable"
    finally:
        await down.aclose()


async def test_metrics_count_requests_by_route_template(api):
    user = api.user()
    scan_id = await api.start_scan(user)
    await api.get(user, f"/api/scans/{scan_id}")
    await api.get(user, "/api/scans/00000000-0000-0000-0000-000000000000")
    response = await api.get(user, "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'api_requests_total{method="GET",route="/api/scans/{scan_id}",status="200"} 1.0' in text
    assert 'api_requests_total{method="GET",route="/api/scans/{scan_id}",status="404"} 1.0' in text
    assert 'api_requests_total{method="POST",route="/api/scans",status="202"} 1.0' in text
    assert 'api_request_duration_seconds_bucket{le="0.1",route="/api/scans/{scan_id}"}' in text
    assert re.search(r'api_scans\{status="pending"\} [1-9]', text)
    assert re.search(r'api_scan_jobs\{state="todo"\} [1-9]', text)
    assert scan_id not in text


async def test_security_headers_and_docs(api):
    response = await api.http.get("/health")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["cache-control"] == "no-store"
    document = (await api.http.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["ApiKey"]["scheme"] == "bearer"
    assert "ErrorBody" in document["components"]["schemas"]
    assert (await api.http.get("/docs")).status_code == 200


async def test_no_personal_value_reaches_the_log(api, caplog):
    caplog.set_level(logging.DEBUG)
    user = api.user()
    person = {**PERSON, "first_name": "Zebulon", "emails": ["zebulon.secret@example.org"], "phones": ["31"]}
    assert (await api.post(user, "/api/scans", json={"person": person})).status_code == 422
    person["phones"] = ["312-555-0199"]
    scan_id = await api.start_scan(user, person=person)
    await api.get(user, f"/api/scans/{scan_id}")
    await api.get(user, "/api/scans")
    for value in ("Zebulon", "zebulon.secret", "555-0199", "5550199", api.keys[user]):
        assert value not in caplog.text


def cli(settings, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "crawler.api", "-s", f"DATABASE_URL={settings['DATABASE_URL']}", "keys", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_keys_cli_creates_lists_and_revokes(api_settings):
    created = cli(api_settings, "create", "--user", "cli-user")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("csk_") and len(key) > 40
    assert await authenticate(api_settings, key) == "cli-user"
    listed = cli(api_settings, "list", "--user", "cli-user")
    assert listed.returncode == 0 and key[:12] in listed.stdout and key not in listed.stdout
    assert cli(api_settings, "revoke", key[:12]).returncode == 0
    assert await authenticate(api_settings, key) is None
    assert cli(api_settings, "revoke", "csk_nothere").returncode == 1
    bad = cli(api_settings, "create", "--user", "no spaces please")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --user")
    await close_pools()
