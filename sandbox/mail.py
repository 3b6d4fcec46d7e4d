"""A transactional e-mail API (``mail``, port 8406), with the habits of the real ones.

    POST /auth/token    {client_id, client_secret} (JSON or a form) -> 200 {access_token, token_type,
                        expires_in}; wrong credentials -> 401 {"error": "invalid_client"}
    POST /send-email    Authorization: Bearer <token>, JSON {to, subject, body[, from]} -> 202 {message_id}

A send meets the checks of a real stack in this order:

1. injected outage (``fail_next: N``): the next N sends get 503 (``fail_status``) from the front,
   before anything else is looked at;
2. the token: missing, unknown, revoked or expired -> 401 (``WWW-Authenticate: Bearer
   error="invalid_token"``); ``unauthorized_next: N`` revokes the token of each of the next N
   sends that carry a valid one and answers 401 (a provider rotating its keys);
3. the pace, per client: a send sooner than ``min_interval_seconds`` (default 10) after the
   client's last ACCEPTED send -> 429 with ``Retry-After``. Refused sends (401, 429, 400, 503) do
   not move the clock. Retry-After is whole seconds rounded up, at least 1 (RFC 9110's
   delta-seconds, what real providers send): with a fractional interval it over-states the wait,
   so tests that measure pacing use intervals of a second or more;
4. the message: not JSON, ``to``/``subject``/``body`` missing or not text, a line break in the
   subject, or an address that is not ``local@domain.tld`` syntax (``ADDRESS``) -> 400
   ``{"error": "invalid_address" | "missing_field" | "invalid_subject" | "invalid_json"}``;
5. accepted: recorded (``GET /__sent``), handed to ``sandbox.mailroom.deliver`` (a broker's
   privacy address reaches that broker, any other lands in the Maildir) -> 202 {message_id}.
   With ``drop_next: N`` the next N accepted sends are recorded and delivered, then the
   connection is closed without an answer: the client cannot know the outcome.

Control (never counted, never rate limited)::

    POST /_sandbox/config  {"token_seconds": 1800, "min_interval_seconds": 10, "fail_next": 0,
                            "drop_next": 0, "unauthorized_next": 0, "fail_status": 503,
                            "client_id": ..., "client_secret": ...,
                            "revoke_tokens": true (every token issued so far answers 401),
                            "reset": true (everything back to the start: defaults, no tokens,
                                           no sent mail, counters at zero; then the other keys)}
    GET  /_sandbox/config  the config
    GET  /__sent           every accepted message: message_id, to, subject, body, at (ISO 8601, UTC)
    GET  /__stats          statuses (per code), rate_limited, unauthorized, token_grants,
                           token_refusals, failed, dropped, accepted, config
    GET  /__tokens         every access token issued (so tests can look for them in logs)
"""

from __future__ import annotations

import math
import re
import secrets
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from sandbox import mailroom
from sandbox.server import Service, register

DEFAULTS: dict[str, Any] = {
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
    "token_seconds": 1800.0,
    "min_interval_seconds": 10.0,
    "fail_next": 0,
    "drop_next": 0,
    "unauthorized_next": 0,
    "fail_status": 503,
}
DEFAULT_SENDER = "Sandbox Mail API <noreply@mail-api.test>"
# local@domain.tld: dot-atom local part (RFC 5322, no quoting), DNS labels, an alphabetic TLD
ADDRESS = re.compile(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)
STATE = web.AppKey("mail_state", object)


def valid_address(address: str) -> bool:
    local = address.rpartition("@")[0]
    return len(address) <= 254 and len(local) <= 64 and ADDRESS.match(address) is not None


class MailState:
    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        self.config = dict(DEFAULTS)
        self.tokens: dict[str, tuple[str, float]] = {}  # token -> (client_id, expiry on the clock)
        self.issued: list[str] = []
        self.last_accepted: dict[str, float] = {}  # client_id -> clock time of its last accepted send
        self.sent: list[dict] = []
        self.counters: Counter = Counter()
        self.statuses: Counter = Counter()

    def configure(self, changes: dict) -> dict:
        """Validate everything first, then apply; raises ValueError naming the bad setting."""
        changes = dict(changes)
        reset, revoke = changes.pop("reset", False) is True, changes.pop("revoke_tokens", False) is True
        for key, value in changes.items():
            if key not in DEFAULTS:
                raise ValueError(f"{key}: unknown setting; known: {', '.join(DEFAULTS)}, revoke_tokens, reset")
            if not valid_setting(key, value):
                raise ValueError(f"{key}: invalid value {value!r} (default {DEFAULTS[key]!r})")
        if reset:
            self.reset()
        if revoke:
            self.tokens.clear()
        self.config.update(changes)
        return self.config

    def grant(self, client_id: str) -> tuple[str, float]:
        token, lifetime = secrets.token_urlsafe(24), float(self.config["token_seconds"])
        self.tokens[token] = (client_id, self.clock() + lifetime)
        self.issued.append(token)
        self.counters["token_grants"] += 1
        return token, lifetime

    def client_of(self, authorization: str | None) -> str | None:
        """The client whose valid token the header carries, or None (missing, unknown, expired)."""
        scheme, _, token = (authorization or "").partition(" ")
        found = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if found is None or self.clock() >= found[1]:
            return None
        return found[0]

    def wait_for(self, client_id: str) -> float:
        """Seconds until the client may send again (0: now)."""
        last = self.last_accepted.get(client_id)
        if last is None:
            return 0.0
        return max(0.0, last + float(self.config["min_interval_seconds"]) - self.clock())

    def take_injected(self, key: str) -> bool:
        if self.config[key] > 0:
            self.config[key] -= 1
            return True
        return False

    def snapshot(self) -> dict:
        return {
            "statuses": {str(code): n for code, n in sorted(self.statuses.items())},
            **{name: self.counters[name] for name in COUNTERS},
            "config": self.config,
        }


COUNTERS = ("accepted", "rate_limited", "unauthorized", "token_grants", "token_refusals", "failed", "dropped")


def valid_setting(key: str, value) -> bool:
    if key in ("client_id", "client_secret"):
        return isinstance(value, str) and bool(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if key in ("fail_next", "drop_next", "unauthorized_next"):
        return isinstance(value, int) and value >= 0
    if key == "fail_status":
        return isinstance(value, int) and 500 <= value <= 599
    if key == "token_seconds":
        return value > 0
    return value >= 0  # min_interval_seconds


def state_of(request: web.Request) -> MailState:
    return request.app[STATE]


def answer(state: MailState, status: int, value: dict, headers: dict | None = None) -> web.Response:
    state.statuses[status] += 1
    return web.Response(body=orjson.dumps(value), status=status, headers=headers, content_type="application/json")


async def read_json(request: web.Request) -> Any:
    try:
        return orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return None


async def token(request: web.Request) -> web.Response:
    state = state_of(request)
    if request.content_type == "application/x-www-form-urlencoded":
        found: Any = dict(await request.post())
    else:
        found = await read_json(request)
    found = found if isinstance(found, dict) else {}
    config = state.config
    if found.get("client_id") != config["client_id"] or found.get("client_secret") != config["client_secret"]:
        state.counters["token_refusals"] += 1
        return answer(state, 401, {"error": "invalid_client"})
    access_token, lifetime = state.grant(config["client_id"])
    expires_in = int(lifetime) if lifetime == int(lifetime) else lifetime  # whole seconds, as APIs send it
    return answer(state, 200, {"access_token": access_token, "token_type": "Bearer", "expires_in": expires_in})


def problem(data: Any) -> str | None:
    """What is wrong with the message (the 400's error code), or None."""
    if not isinstance(data, dict):
        return "invalid_json"
    if any(not isinstance(data.get(field), str) for field in ("to", "subject", "body")) or not data["to"]:
        return "missing_field"
    if "\r" in data["subject"] or "\n" in data["subject"]:
        return "invalid_subject"
    if not valid_address(data["to"]):
        return "invalid_address"
    return None


async def send_email(request: web.Request) -> web.Response:
    state = state_of(request)
    config = state.config
    if state.take_injected("fail_next"):
        state.counters["failed"] += 1
        return answer(state, config["fail_status"], {"error": "unavailable"}, {"Retry-After": "1"})
    client = state.client_of(request.headers.get("Authorization"))
    if client is not None and state.take_injected("unauthorized_next"):
        state.tokens.pop(request.headers["Authorization"].partition(" ")[2].strip(), None)
        client = None
    if client is None:
        state.counters["unauthorized"] += 1
        headers = {"WWW-Authenticate": 'Bearer realm="mail", error="invalid_token"'}
        return answer(state, 401, {"error": "invalid_token"}, headers)
    wait = state.wait_for(client)
    if wait > 0:
        state.counters["rate_limited"] += 1
        seconds = max(1, math.ceil(wait))
        return answer(state, 429, {"error": "rate_limited"}, {"Retry-After": str(seconds)})
    data = await read_json(request)
    if (error := problem(data)) is not None:
        return answer(state, 400, {"error": error})
    message_id = f"msg_{uuid.uuid4().hex}"
    state.last_accepted[client] = state.clock()
    state.counters["accepted"] += 1
    state.sent.append(
        {
            "message_id": message_id,
            "to": data["to"],
            "subject": data["subject"],
            "body": data["body"],
            "at": datetime.now(UTC).isoformat(),
        }
    )
    sender = data.get("from") if isinstance(data.get("from"), str) and data.get("from") else DEFAULT_SENDER
    mailroom.deliver(mailroom.compose(sender, data["to"], data["subject"], data["body"]))
    if state.take_injected("drop_next"):
        state.counters["dropped"] += 1
        if request.transport is not None:
            request.transport.close()  # accepted and delivered; the answer never leaves
        return web.Response(status=500)
    return answer(state, 202, {"message_id": message_id})


async def sent(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(state_of(request).sent), content_type="application/json")


async def tokens(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(state_of(request).issued), content_type="application/json")


async def stats(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(state_of(request).snapshot()), content_type="application/json")


async def configure(request: web.Request) -> web.Response:
    state = state_of(request)
    if request.method == "POST":
        changes = await read_json(request)
        if not isinstance(changes, dict):
            return web.json_response({"error": "expected a JSON object"}, status=400)
        try:
            state.configure(changes)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=400)
    return web.Response(body=orjson.dumps(state.config), content_type="application/json")


def make_app(options: dict) -> web.Application:
    app = web.Application()
    app[STATE] = MailState()
    app.router.add_post("/auth/token", token)
    app.router.add_post("/send-email", send_email)
    app.router.add_get("/__sent", sent)
    app.router.add_get("/__stats", stats)
    app.router.add_get("/__tokens", tokens)
    app.router.add_get("/_sandbox/config", configure)
    app.router.add_post("/_sandbox/config", configure)
    return app


SERVICE = register(Service("mail", 8406, make_app, "e-mail API (token auth, 1 send per 10 s, /__sent)"))
