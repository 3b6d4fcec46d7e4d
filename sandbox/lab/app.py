"""The lab service: request handling and registration (``lab``, port 8300).

Every route is under ``/t/<tenant>`` (sandbox/lab/__init__.py lists them).
A content request (page, json, protected, blocked) meets the checks of a real
stack in this order:

1. arrival recorded (time, path, whether the tenant is down);
2. ``delay``; then ``drop`` closes the connection without an answer;
3. outage (``down``, ``down_until``, ``fail_mode: always``): ``fail_status``
   from the front, before any budget is spent;
4. bearer token (``/protected`` only): 401, free;
5. rate limit (page, json, protected, when ``rate_limit`` > 0): 429, free;
6. ``every_nth`` / ``first_n`` failures (counted against the budget);
7. the endpoint: ``block_after`` soft-limit pages, truncated JSON, the content.

``X-RateLimit-*`` headers are on every answer of a budgeted endpoint while
rate limiting is on. ``POST /oauth/token`` is the separate auth server: its
arrivals are recorded but it is never delayed, dropped or failed. Every time
above is the tenant's clock (``POST /t/<t>/clock``, sandbox/events/clock.py).
"""

from __future__ import annotations

import asyncio
import base64

import orjson
from aiohttp import web

from sandbox.lab.pages import BLOCKS, error_body, json_body, page_html
from sandbox.lab.tenant import DEFAULTS, Tenant, merged
from sandbox.server import Service, register

TENANTS = web.AppKey("lab_tenants", dict)
ERROR_CODES = {500: "INTERNAL_ERROR", 502: "BAD_GATEWAY", 503: "UNAVAILABLE", 504: "GATEWAY_TIMEOUT"}


def tenant_of(request: web.Request) -> Tenant:
    tenants, name = request.app[TENANTS], request.match_info["tenant"]
    tenant = tenants.get(name)
    if tenant is None:
        tenant = tenants[name] = Tenant(name)
    return tenant


def reply(
    tenant: Tenant, status: int, body: bytes, headers: dict | None = None, content_type: str = "application/json"
) -> web.Response:
    tenant.answered(status)
    return web.Response(body=body, status=status, headers=headers, content_type=content_type)


def drop(request: web.Request, tenant: Tenant) -> web.Response:
    """Close the connection without an answer (the client sees a disconnection); the response is never sent."""
    tenant.counters["dropped"] += 1
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=500)


def failure(request: web.Request, tenant: Tenant, headers: dict) -> web.Response:
    config = tenant.config
    status = config["fail_status"]
    if status == "drop":
        return drop(request, tenant)
    tenant.counters["failures"] += 1
    if config["retry_after"] is not None:
        headers["Retry-After"] = format(config["retry_after"], "g")
    body = error_body(ERROR_CODES.get(status, "ERROR"), "Injected failure, please retry", status=status)
    return reply(tenant, status, body, headers)


async def admit(
    request: web.Request, budgeted: bool, protected: bool = False
) -> tuple[Tenant, web.Response | None, dict]:
    """Steps 1-6 of the module docstring: (tenant, an early answer or None, headers for the answer)."""
    tenant = tenant_of(request)
    config = tenant.config
    now = tenant.clock.time()
    down = tenant.is_down(now)
    tenant.arrive(now, request.path, down)
    if config["delay"] > 0:
        await asyncio.sleep(config["delay"])
    if config["drop"]:
        return tenant, drop(request, tenant), {}
    limited = budgeted and config["rate_limit"] > 0
    key = request.headers.get("X-API-Key") or "anonymous"
    if down:
        return tenant, failure(request, tenant, dict(tenant.pool(key).peek().headers) if limited else {}), {}
    if protected:
        problem = tenant.token_problem(request.headers.get("Authorization"))
        if problem is not None:
            tenant.unauthorized[problem] += 1
            headers = dict(tenant.pool(key).peek().headers) if limited else {}
            description = f'error_description="{problem} access token"'
            headers["WWW-Authenticate"] = f'Bearer realm="lab", error="invalid_token", {description}'
            body = orjson.dumps({"error": "invalid_token", "reason": problem})
            return tenant, reply(tenant, 401, body, headers), {}
    headers = {}
    if limited:
        decision = tenant.take(key)
        headers = decision.headers
        if not decision.allowed:
            headers["Retry-After"] = str(decision.retry_after)
            pool = tenant.pool(key)
            message = f"Rate limit of {pool.limit} requests per {pool.window:g} s exceeded"
            message += f"; retry in {decision.retry_after} s"
            return tenant, reply(tenant, 429, error_body("RATE_LIMITED", message), headers), {}
    if tenant.injected_failure(request.path_qs):
        return tenant, failure(request, tenant, headers), {}
    return tenant, None, headers


def number(request: web.Request) -> int:
    return int(request.match_info["n"])


async def page(request: web.Request) -> web.Response:
    tenant, early, headers = await admit(request, budgeted=True)
    if early is not None:
        return early
    if tenant.config["block_after"] > 0 and not tenant.block_pool.take().allowed:
        tenant.counters["soft_limited"] += 1
        status, extra, body = BLOCKS["soft-limit"]
        return reply(tenant, status, body, {**headers, **extra}, "text/html")
    tenant.counters["pages"] += 1
    return reply(tenant, 200, page_html(number(request)), headers, "text/html")


async def json_item(request: web.Request) -> web.Response:
    tenant, early, headers = await admit(request, budgeted=True)
    if early is not None:
        return early
    body = json_body(number(request))
    if tenant.truncates_json(request.path_qs):
        tenant.counters["truncated"] += 1
        return reply(tenant, 200, body[: len(body) // 2], headers)
    tenant.counters["json"] += 1
    return reply(tenant, 200, body, headers)


async def protected(request: web.Request) -> web.Response:
    tenant, early, headers = await admit(request, budgeted=True, protected=True)
    if early is not None:
        return early
    tenant.counters["protected"] += 1
    return reply(tenant, 200, json_body(number(request)), headers)


async def blocked(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind not in BLOCKS:
        return web.json_response({"error": f"unknown block page; known: {', '.join(BLOCKS)}"}, status=404)
    tenant, early, _ = await admit(request, budgeted=False)
    if early is not None:
        return early
    tenant.counters[f"block:{kind}"] += 1
    status, headers, body = BLOCKS[kind]
    return reply(tenant, status, body, headers, "text/html")


async def credentials(request: web.Request) -> dict:
    """client_id, client_secret and grant_type from a JSON body, a form body or HTTP Basic auth."""
    found: dict = {}
    if request.content_type == "application/json":
        try:
            body = await request.json(loads=orjson.loads)
        except ValueError:
            body = None
        found = {k: v for k, v in body.items() if isinstance(v, str)} if isinstance(body, dict) else {}
    elif request.can_read_body:
        found = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    authorization = request.headers.get("Authorization", "")
    if authorization[:6].lower() == "basic ":
        try:
            client_id, _, secret = base64.b64decode(authorization[6:].strip()).decode().partition(":")
            found.setdefault("client_id", client_id)
            found.setdefault("client_secret", secret)
        except ValueError:
            pass
    return found


async def token(request: web.Request) -> web.Response:
    tenant = tenant_of(request)
    now = tenant.clock.time()
    tenant.arrive(now, request.path, tenant.is_down(now))
    found, config = await credentials(request), tenant.config
    headers = {"Cache-Control": "no-store"}
    if found.get("grant_type", "client_credentials") != "client_credentials":
        return reply(tenant, 400, orjson.dumps({"error": "unsupported_grant_type"}), headers)
    if found.get("client_id") != config["client_id"] or found.get("client_secret") != config["client_secret"]:
        tenant.counters["invalid_client"] += 1
        return reply(tenant, 401, orjson.dumps({"error": "invalid_client"}), headers)
    ttl = config["token_ttl"]
    body = {"access_token": tenant.issue_token(), "token_type": "Bearer", "expires_in": ttl}
    return reply(tenant, 200, orjson.dumps(body), headers)


# ---- control: config, down, stats --------------------------------------------------------------------


async def revoke(request: web.Request) -> web.Response:
    """Revoke every token issued so far (as a server does on a key rotation): the next use is a 401."""
    tenant = tenant_of(request)
    revoked = len(tenant.tokens)
    tenant.tokens.clear()
    return json_answer({"revoked": revoked})


def json_answer(value, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(value), status=status, content_type="application/json")


def bad_setting(exc: ValueError) -> web.Response:
    name = str(exc).split(":", 1)[0]
    return json_answer({"error": {"code": "INVALID_SETTING", "message": str(exc), "parameter": name}}, 400)


async def read_json(request: web.Request):
    if not request.can_read_body:
        return {}
    try:
        return await request.json(loads=orjson.loads)
    except ValueError:
        return None


async def configure(request: web.Request) -> web.Response:
    """Merge the posted settings; ``"defaults": true`` starts from the defaults, ``"reset": true`` clears counters."""
    tenant = tenant_of(request)
    if request.method == "GET":
        return json_answer(tenant.config)
    changes = await read_json(request)
    if isinstance(changes, dict):
        defaults, reset = changes.pop("defaults", False) is True, changes.pop("reset", False) is True
        try:
            merged(DEFAULTS, changes)  # validate before touching anything
        except ValueError as exc:
            return bad_setting(exc)
        if defaults:
            tenant.configure(DEFAULTS)
        if reset:
            tenant.reset()
    try:
        return json_answer(tenant.configure(changes))
    except ValueError as exc:
        return bad_setting(exc)


async def down(request: web.Request) -> web.Response:
    """``{"seconds": S}``: every content request fails with ``fail_status`` for S seconds (0 ends an outage)."""
    tenant = tenant_of(request)
    body = await read_json(request)
    seconds = body.get("seconds") if isinstance(body, dict) else None
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 86_400:
        return bad_setting(ValueError(f"seconds: expected a number of seconds 0-86400, got {seconds!r}"))
    until = tenant.clock.time() + seconds if seconds else 0.0
    tenant.configure({"down_until": until})
    return json_answer({"down_until": until, "fail_status": tenant.config["fail_status"]})


async def clock(request: web.Request) -> web.Response:
    """Freeze, thaw or advance the tenant's time (windows, tokens, outages); answers the clock's state."""
    try:
        return json_answer(tenant_of(request).clock.control(await read_json(request)))
    except ValueError as exc:
        return bad_setting(exc)


async def stats(request: web.Request) -> web.Response:
    """Counters and config; the recorded lists too unless ``?lists=0``."""
    return json_answer(tenant_of(request).stats(lists=request.query.get("lists", "1") not in ("0", "false")))


def make_app(_options: dict) -> web.Application:
    app = web.Application()
    app[TENANTS] = {}
    n = r"{n:\d{1,15}}"
    routes = app.router
    routes.add_get(f"/t/{{tenant}}/page/{n}", page)
    routes.add_get(f"/t/{{tenant}}/json/{n}", json_item)
    routes.add_get(f"/t/{{tenant}}/protected/{n}", protected)
    routes.add_get("/t/{tenant}/blocked/{kind}", blocked)
    routes.add_post("/t/{tenant}/oauth/token", token)
    routes.add_get("/t/{tenant}/config", configure)
    routes.add_post("/t/{tenant}/config", configure)
    routes.add_post("/t/{tenant}/down", down)
    routes.add_post("/t/{tenant}/revoke", revoke)
    routes.add_post("/t/{tenant}/clock", clock)
    routes.add_get("/t/{tenant}/stats", stats)
    return app


SERVICE = register(Service("lab", 8300, make_app, "resilience lab (switchable failures, per-tenant state)"))
