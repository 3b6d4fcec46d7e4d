"""The sandbox's e-mail API (sandbox/mail.py) over real HTTP, in process, on an injected clock.

Token lifetimes and the pace are the clock's, so expiry and Retry-After are checked exactly and
without waiting. The crawler's provider against the same service, in a real crawl, is in
tests/removal/test_mail_api_crawl.py.
"""

from __future__ import annotations

import mailbox

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox import mailroom
from sandbox.mail import STATE, MailState, make_app, valid_address

pytestmark = pytest.mark.unit

CREDENTIALS = {"client_id": "sandbox-client", "client_secret": "sandbox-secret"}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Mail:
    def __init__(self, client: TestClient, clock: Clock, maildir):
        self.client, self.clock, self.maildir = client, clock, maildir

    async def token(self) -> str:
        reply = await self.client.post("/auth/token", json=CREDENTIALS)
        assert reply.status == 200
        return (await reply.json())["access_token"]

    async def send(self, token: str | None, **message) -> aiohttp.ClientResponse:
        message = {"to": "someone@example.org", "subject": "Hello", "body": "Text", **message}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post("/send-email", json=message, headers=headers)

    async def configure(self, **changes) -> aiohttp.ClientResponse:
        return await self.client.post("/_sandbox/config", json=changes)

    async def get(self, path: str):
        reply = await self.client.get(path)
        assert reply.status == 200
        return await reply.json()


@pytest.fixture
async def mail(tmp_path):
    maildir = tmp_path / "maildir"
    mailroom.configure({"maildir": str(maildir)})
    clock = Clock()
    app = make_app({})
    app[STATE] = MailState(clock=clock)
    async with TestClient(TestServer(app)) as client:
        yield Mail(client, clock, maildir)
    mailroom.configure({})


def delivered(maildir) -> list:
    return list(mailbox.Maildir(maildir, create=False)) if maildir.exists() else []


async def test_a_token_for_the_right_credentials_only(mail):
    reply = await mail.client.post("/auth/token", json={**CREDENTIALS, "client_secret": "wrong"})
    assert reply.status == 401 and (await reply.json()) == {"error": "invalid_client"}
    reply = await mail.client.post("/auth/token", data=CREDENTIALS)  # a form works too
    data = await reply.json()
    assert reply.status == 200 and data["expires_in"] == 1800 and data["token_type"] == "Bearer"
    stats = await mail.get("/__stats")
    assert stats["token_grants"] == 1 and stats["token_refusals"] == 1
    assert await mail.get("/__tokens") == [data["access_token"]]


async def test_an_accepted_send_is_logged_and_delivered(mail):
    token = await mail.token()
    reply = await mail.send(token, to="Someone@Example.org", subject="Verify", body="Token 123")
    assert reply.status == 202
    message_id = (await reply.json())["message_id"]
    [sent] = await mail.get("/__sent")
    assert sent["message_id"] == message_id
    assert (sent["to"], sent["subject"], sent["body"]) == ("Someone@Example.org", "Verify", "Token 123")
    assert sent["at"].endswith("+00:00")
    [message] = delivered(mail.maildir)
    assert message["To"] == "Someone@Example.org" and message["Subject"] == "Verify"
    assert message.get_payload(decode=True).decode().strip() == "Token 123"


async def test_mail_to_a_registered_address_reaches_its_handler_not_the_maildir(mail):
    received = []
    mailroom.register_recipient("privacy@broker-test.test", received.append)
    try:
        reply = await mail.send(await mail.token(), to="Privacy@Broker-Test.test", subject="Delete", body="Record")
        assert reply.status == 202
    finally:
        mailroom.RECIPIENTS.pop("privacy@broker-test.test")
    assert [m["Subject"] for m in received] == ["Delete"]
    assert delivered(mail.maildir) == []


async def test_missing_unknown_expired_and_revoked_tokens_get_401(mail):
    assert (await mail.send(None)).status == 401
    reply = await mail.send("not-a-token")
    assert reply.status == 401 and "invalid_token" in reply.headers["WWW-Authenticate"]
    await mail.configure(token_seconds=60, min_interval_seconds=0)
    token = await mail.token()
    mail.clock.now += 59.9
    assert (await mail.send(token)).status == 202
    mail.clock.now += 0.1
    assert (await mail.send(token)).status == 401  # expired
    token = await mail.token()
    await mail.configure(revoke_tokens=True)
    assert (await mail.send(token)).status == 401
    token = await mail.token()
    await mail.configure(unauthorized_next=1)
    assert (await mail.send(token)).status == 401  # revoked with the answer...
    assert (await mail.send(token)).status == 401  # ...so it stays refused
    assert (await mail.send(await mail.token())).status == 202
    stats = await mail.get("/__stats")
    assert stats["unauthorized"] == 6 and stats["accepted"] == 2


async def test_sends_sooner_than_the_interval_get_429_with_whole_seconds(mail):
    await mail.configure(min_interval_seconds=10)
    token = await mail.token()
    assert (await mail.send(token)).status == 202
    mail.clock.now += 2.5
    reply = await mail.send(token)
    assert reply.status == 429 and reply.headers["Retry-After"] == "8"  # 7.5 s rounded up
    mail.clock.now += 7.4
    assert (await mail.send(token)).headers["Retry-After"] == "1"  # never 0 while a wait remains
    mail.clock.now += 0.1  # refusals did not move the clock: 10 s after the accepted send
    assert (await mail.send(token)).status == 202
    # the pace is per client, not per token: a new token does not get around it
    assert (await mail.send(await mail.token())).status == 429
    await mail.configure(min_interval_seconds=0.3)
    mail.clock.now += 0.1
    assert (await mail.send(token)).headers["Retry-After"] == "1"  # fractional waits round up to 1
    stats = await mail.get("/__stats")
    assert stats["rate_limited"] == 4 and stats["statuses"]["429"] == 4


async def test_invalid_messages_get_400_and_are_never_sent(mail):
    await mail.configure(min_interval_seconds=0)
    token = await mail.token()
    for address in ["", "plain", "a@b", "a@b.c", "two@@example.org", "a b@example.org", ".a@example.org",
                    "a..b@example.org", "a@-example.org", "a@example..org", "a@example.org.", "é@example.org",
                    "x" * 65 + "@example.org", "a@" + "b" * 250 + ".org", "Name <a@example.org>"]:  # fmt: skip
        reply = await mail.send(token, to=address)
        assert reply.status == 400, address
        assert (await reply.json())["error"] in ("invalid_address", "missing_field"), address
    assert (await (await mail.send(token, subject="Hi\r\nBcc: x@example.org")).json())["error"] == "invalid_subject"
    reply = await mail.client.post("/send-email", json={"to": "a@example.org", "subject": "S"}, headers={
        "Authorization": f"Bearer {token}"})  # fmt: skip
    assert (await reply.json())["error"] == "missing_field"
    reply = await mail.client.post("/send-email", data=b"{", headers={"Authorization": f"Bearer {token}"})
    assert (await reply.json())["error"] == "invalid_json"
    assert await mail.get("/__sent") == [] and delivered(mail.maildir) == []
    for address in ["a@example.org", "first.last+tag@sub.example.co.uk", "O'Neil@example.org", "x@xn--bcher-kva.de"]:
        assert (await mail.send(token, to=address)).status == 202, address


def test_the_address_rule():
    assert valid_address("optout+abc123@example.org")
    assert not valid_address("optout@localhost")


async def test_injected_503s_come_first_then_the_send_goes_through(mail):
    await mail.configure(fail_next=2)
    token = await mail.token()
    for _ in range(2):
        reply = await mail.send(token)
        assert reply.status == 503 and reply.headers["Retry-After"] == "1"
    assert (await mail.send(token)).status == 202
    stats = await mail.get("/__stats")
    assert stats["failed"] == 2 and stats["statuses"] == {"200": 1, "202": 1, "503": 2}
    assert stats["config"]["fail_next"] == 0


async def test_a_dropped_answer_still_sends_the_mail(mail):
    await mail.configure(drop_next=1)
    token = await mail.token()
    with pytest.raises(aiohttp.ClientError):
        await mail.send(token, to="dropped@example.org")
    assert [s["to"] for s in await mail.get("/__sent")] == ["dropped@example.org"]
    assert [m["To"] for m in delivered(mail.maildir)] == ["dropped@example.org"]
    assert (await mail.get("/__stats"))["dropped"] == 1


async def test_config_is_validated_and_reset_starts_afresh(mail):
    for bad in ({"fail_next": -1}, {"token_seconds": 0}, {"fail_status": 404}, {"min_interval_seconds": "1"},
                {"drop_next": True}, {"nonsense": 1}):  # fmt: skip
        reply = await mail.configure(**bad)
        assert reply.status == 400 and next(iter(bad)) in (await reply.json())["error"]
    assert (await mail.client.post("/_sandbox/config", data=b"[]")).status == 400
    token = await mail.token()
    await mail.send(token)
    await mail.configure(min_interval_seconds=5)
    reply = await mail.configure(reset=True, fail_next=1)
    config = await reply.json()
    assert config["min_interval_seconds"] == 10.0 and config["fail_next"] == 1
    assert await mail.get("/__sent") == [] and await mail.get("/__tokens") == []
    assert (await mail.send(token)).status == 503  # the outage answers before the (forgotten) token
    assert (await mail.send(token)).status == 401
    assert (await mail.get("/_sandbox/config"))["fail_next"] == 0
