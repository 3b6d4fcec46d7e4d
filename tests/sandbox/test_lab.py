"""The resilience lab, over plain HTTP against the session's `python -m sandbox`.

Each test works under a tenant of its own (``/t/<uuid>``), so it starts from the
defaults and sees only its own counters. Tests of windows, outages and token
expiry freeze the tenant's clock and step it forward (``POST /t/<t>/clock``)
rather than sleep, so they hold however busy the machine.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

from support import Reply, http

RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def call(
    url: str, data: dict | None = None, form: dict | None = None, headers: dict | None = None, timeout: float = 10
) -> Reply:
    return http(url, data=data, form=form, headers=headers, timeout=timeout)


@pytest.fixture
def lab(sandbox):
    """The base URL of a fresh tenant of the session's lab."""
    return f"{sandbox['lab']}/t/{uuid.uuid4().hex}"


def configure(base: str, **changes) -> dict:
    reply = call(base + "/config", data=changes)
    assert reply.status == 200, reply.body
    return reply.json()


def stats(base: str) -> dict:
    return call(base + "/stats").json()


def clock(base: str, **control) -> float:
    """Freeze or advance the tenant's clock (``freeze=True``, ``advance=S``); its time afterwards."""
    reply = call(base + "/clock", data=control)
    assert reply.status == 200, reply.body
    return reply.json()["time"]


def statuses(base: str, path: str, times: int) -> list[int]:
    return [call(base + path).status for _ in range(times)]


def test_pages_and_json_are_small_deterministic_and_link_onwards(lab, sandbox):
    assert call(sandbox["lab"] + "/health").json() == {"status": "ok", "service": "lab"}
    page = call(lab + "/page/4")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert 1500 <= len(page.body) <= 2600 and b"<title>Lab page 4</title>" in page.body
    assert re.findall(rb"href='([^']+)'", page.body) == [b"page/13", b"page/14", b"page/15"]
    assert call(lab + "/page/4").body == page.body and call(lab + "/page/5").body != page.body
    doc = call(lab + "/json/2").json()
    assert doc["n"] == 2 and len(doc["items"]) == 5 and doc["items"][0]["id"] == 20
    counters = stats(lab)
    assert counters["pages_served"] == 3 and counters["json_served"] == 1 and counters["statuses"] == {"200": 4}
    assert counters["first_response_at"] <= counters["last_response_at"] <= time.time()
    assert [a[1].rsplit("/", 2)[1:] for a in counters["arrivals"]][-1] == ["json", "2"]


def test_fixed_window_rate_limit_per_api_key(lab):
    configure(lab, rate_limit=3, rate_window=1)
    clock(lab, freeze=True)
    replies = [call(lab + path) for path in ("/page/1", "/json/1", "/page/2")]
    clock(lab, advance=0.5)  # half the window has gone
    replies.append(call(lab + "/page/3"))
    assert [r.status for r in replies] == [200, 200, 200, 429]
    assert all(all(h in r.headers for h in RATE_HEADERS) for r in replies)
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0", "0"]
    refused = replies[-1]
    assert refused.headers["Retry-After"] == "1" and refused.json()["error"]["code"] == "RATE_LIMITED"
    assert call(lab + "/page/1", headers={"X-API-Key": "other"}).status == 200  # a budget of its own
    assert "X-RateLimit-Limit" not in call(lab + "/blocked/forbidden").headers  # not a budgeted endpoint
    clock(lab, advance=0.25)
    assert call(lab + "/page/1").status == 429  # the window is not over yet
    clock(lab, advance=0.25)  # it is now (binary fractions: the sum is exact)
    assert call(lab + "/page/1").status == 200
    counters = stats(lab)
    assert counters["rate_limited"] == 2 and counters["first_response_at"] < counters["rate_limited_at"][0]
    windows = [(w["key"], w["allowed"], w["refused"]) for w in counters["windows"]]
    assert windows == [("anonymous", 3, 2), ("other", 1, 0), ("anonymous", 1, 0)]
    configure(lab, rate_limit=5, rate_window=30, reset_style="epoch")
    now = clock(lab, advance=0)
    assert int(call(lab + "/page/1").headers["X-RateLimit-Reset"]) == math.ceil(now + 30)


def test_every_nth_first_n_and_always_failures(lab):
    configure(lab, fail_mode="every_nth", fail_n=3)
    assert statuses(lab, "/page/1", 6) == [200, 200, 503, 200, 200, 503]
    configure(lab, fail_mode="first_n", fail_n=2, fail_status=500, retry_after=0.5)
    failed = call(lab + "/json/1")
    assert failed.status == 500 and failed.headers["Retry-After"] == "0.5"
    assert failed.json()["error"]["code"] == "INTERNAL_ERROR"
    assert statuses(lab, "/json/1", 3) == [500, 200, 200] and statuses(lab, "/json/2", 3) == [500, 500, 200]
    configure(lab, fail_mode="always", fail_status=502, retry_after=None)
    always = call(lab + "/page/9")
    assert always.status == 502 and "Retry-After" not in always.headers
    configure(lab, fail_mode="off", down=True)
    assert call(lab + "/protected/1").status == 502  # an outage comes before the token check
    configure(lab, down=False, down_until=time.time() - 1)
    assert call(lab + "/page/9").status == 200
    assert stats(lab)["failures"] == 2 + 4 + 2  # every_nth, first_n (2 paths x 2), always and down


def test_down_for_some_seconds_then_recovers_with_arrivals_recorded(lab):
    configure(lab, rate_limit=100)
    started = clock(lab, freeze=True)
    outage = call(lab + "/down", data={"seconds": 0.5}).json()
    assert outage == {"fail_status": 503, "down_until": started + 0.5}
    during = [call(lab + "/page/1") for _ in range(2)]
    assert [r.status for r in during] == [503, 503] and during[0].headers["X-RateLimit-Remaining"] == "100"
    clock(lab, advance=0.5)  # the outage's end
    assert call(lab + "/page/1").status == 200
    counters = stats(lab)
    assert [a[2] for a in counters["arrivals"]] == [True, True, False] and counters["down_requests"] == 2
    assert [a[0] for a in counters["arrivals"]] == [started, started, started + 0.5]
    assert counters["windows"][0]["allowed"] == 1  # an outage's answers spend no budget
    assert call(lab + "/down", data={"seconds": -1}).status == 400
    call(lab + "/down", data={"seconds": 60})
    assert call(lab + "/page/1").status == 503
    call(lab + "/down", data={"seconds": 0})
    assert call(lab + "/page/1").status == 200


def test_truncated_json_is_a_200_that_does_not_parse(lab):
    configure(lab, truncate_json=0.5)
    replies = [call(lab + "/json/3") for _ in range(4)]
    assert [r.status for r in replies] == [200] * 4
    assert [len(r.body) < len(replies[0].body) for r in replies] == [False, True, False, True]
    cut = replies[1]
    assert cut.headers["Content-Type"].startswith("application/json")
    assert int(cut.headers["Content-Length"]) == len(cut.body) == len(replies[0].body) // 2
    with pytest.raises(ValueError):
        json.loads(cut.body)
    configure(lab, truncate_json=0, truncate_json_first_n=1)
    first, second = call(lab + "/json/7"), call(lab + "/json/7")
    assert second.json()["n"] == 7 and len(first.body) == len(second.body) // 2
    assert stats(lab)["truncated"] == 3


def test_delay_makes_timeouts_and_drop_closes_the_connection(lab):
    configure(lab, delay=0.3)
    started = time.monotonic()
    assert call(lab + "/page/1").status == 200 and time.monotonic() - started >= 0.3
    configure(lab, delay=2)  # far beyond the client's timeout, however late the client gets to look
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        call(lab + "/page/1", timeout=0.1)
    configure(lab, delay=0, drop=True)
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        call(lab + "/page/1")
    configure(lab, drop=False, fail_status="drop", fail_mode="first_n", fail_n=1)
    with pytest.raises((ConnectionError, urllib.error.URLError)):
        call(lab + "/json/1")
    assert call(lab + "/json/1").status == 200
    assert stats(lab)["dropped"] == 2


def test_bearer_tokens_expire_and_401s_are_counted_by_reason(lab, sandbox):
    token_url = lab + "/oauth/token"
    wrong = call(token_url, form={"client_id": "lab-client", "client_secret": "nope"})
    assert wrong.status == 401 and wrong.json() == {"error": "invalid_client"}
    issued = call(
        token_url, form={"grant_type": "client_credentials", "client_id": "lab-client", "client_secret": "lab-secret"}
    ).json()
    assert issued["token_type"] == "Bearer" and issued["expires_in"] == 3600 and len(issued["access_token"]) >= 20
    basic = base64.b64encode(b"lab-client:lab-secret").decode()
    assert call(token_url, form={}, headers={"Authorization": f"Basic {basic}"}).status == 200
    assert call(token_url, form={"grant_type": "password"}).json() == {"error": "unsupported_grant_type"}
    garbled = urllib.request.Request(
        token_url, data=b"{", headers={"Content-Type": "application/json", "Authorization": "Basic !!"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(garbled, timeout=10)
    assert refused.value.code == 401
    missing = call(lab + "/protected/1")
    assert missing.status == 401 and 'error="invalid_token"' in missing.headers["WWW-Authenticate"]
    assert call(lab + "/protected/1", headers={"Authorization": "Bearer made-up"}).status == 401
    credentials = {"client_id": "lab-client", "client_secret": "lab-secret"}
    foreign = call(f"{sandbox['lab']}/t/{uuid.uuid4().hex}/oauth/token", data=credentials)
    foreign_auth = {"Authorization": f"Bearer {foreign.json()['access_token']}"}
    assert call(lab + "/protected/1", headers=foreign_auth).status == 401
    good = call(lab + "/protected/5", headers={"Authorization": f"Bearer {issued['access_token']}"})
    assert good.status == 200 and good.json()["n"] == 5
    configure(lab, token_ttl=30, client_secret="s3")
    clock(lab, freeze=True)
    short = call(token_url, data={"client_id": "lab-client", "client_secret": "s3"}).json()
    assert short["expires_in"] == 30
    auth = {"Authorization": f"Bearer {short['access_token']}"}
    assert call(lab + "/protected/1", headers=auth).status == 200
    clock(lab, advance=29.5)
    assert call(lab + "/protected/1", headers=auth).status == 200  # valid for its whole lifetime
    clock(lab, advance=0.5)
    expired = call(lab + "/protected/1", headers=auth)
    assert expired.status == 401 and 'error_description="expired access token"' in expired.headers["WWW-Authenticate"]
    counters = stats(lab)
    assert counters["tokens_issued"] == len(counters["token_issued_at"]) == 3 and counters["invalid_client"] == 2
    assert counters["unauthorized"] == {"missing": 1, "unknown": 2, "expired": 1}
    assert counters["protected_served"] == 3


def test_block_pages_and_a_soft_limit_after_n_pages(lab):
    expected = {
        "captcha": (200, [b"Attention Required", b"g-recaptcha", b"h-captcha"]),
        "interstitial": (503, [b"Just a moment...", b"Checking your browser"]),
        "soft-limit": (200, [b"Rate Limit Exceeded"]),
        "forbidden": (403, [b"Access denied"]),
    }
    for kind, (status, markers) in expected.items():
        reply = call(f"{lab}/blocked/{kind}")
        assert reply.status == status and all(m in reply.body for m in markers), kind
        assert reply.headers["Content-Type"].startswith("text/html")
    assert call(lab + "/blocked/nothing").status == 404
    configure(lab, block_after=2, block_window=30)
    pages = [call(f"{lab}/page/{n}") for n in range(3)]
    assert [p.status for p in pages] == [200, 200, 200]
    assert [b"Rate Limit Exceeded" in p.body for p in pages] == [False, False, True]
    counters = stats(lab)
    assert counters["soft_limited"] == 1 and counters["blocks"] == dict.fromkeys(expected, 1)


def test_tenants_are_isolated_and_settings_validated(lab, sandbox):
    other = f"{sandbox['lab']}/t/{uuid.uuid4().hex}"
    configure(lab, down=True)
    assert call(lab + "/page/1").status == 503 and call(other + "/page/1").status == 200
    assert stats(other)["requests"] == 1 and stats(lab)["requests"] == 1
    bad_settings = [
        {"rate_limit": -1},
        {"fail_mode": "sometimes"},
        {"fail_status": 200},
        {"delay": "1"},
        {"down": 1},
        {"nope": 1},
    ]
    for bad in bad_settings:
        reply = call(lab + "/config", data=bad)
        assert reply.status == 400 and reply.json()["error"]["parameter"] == next(iter(bad)), bad
    assert call(lab + "/config").json()["down"] is True  # nothing applied by a refused change
    for bad in ({"advance": -1}, {"freeze": "yes"}, {"rewind": 1}):  # time never goes back
        reply = call(lab + "/clock", data=bad)
        assert reply.status == 400 and reply.json()["error"]["parameter"] == next(iter(bad)), bad
    assert configure(lab, defaults=True, reset=True, delay=0.01) == {**call(other + "/config").json(), "delay": 0.01}
    counters = call(lab + "/stats?lists=0").json()
    assert counters["requests"] == 0 and "arrivals" not in counters
