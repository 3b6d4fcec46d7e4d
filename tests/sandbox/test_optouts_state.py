"""The brokers' opt-out state (``sandbox/brokers/optouts.py``) on a hand-driven clock, and thatsthem's
privacy inbox in process: ``sandbox.mailroom.deliver`` hands a letter to the handler the site registered,
which only works in the process that built the site (the sandbox's), so the app runs in this one.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandbox import mailroom
from sandbox.brokers import radaris, thatsthem
from sandbox.brokers.common import digest, person_key
from sandbox.brokers.optouts import OptOuts, listing_path, valid_email
from sandbox.population import default_population
from sandbox.server import SERVICES, build_app

pytestmark = pytest.mark.unit

PEOPLE = default_population().people


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def state(config: dict) -> tuple[OptOuts, Clock]:
    clock = Clock()
    optouts = OptOuts("radaris", lambda: config, clock)
    optouts.index(PEOPLE, radaris.listing_url)
    return optouts, clock


def test_a_listing_is_removed_processing_seconds_after_its_submission_and_every_submission_counts():
    config = {"optout_processing_seconds": 60.0}
    optouts, clock = state(config)
    person = next(p for p in PEOPLE if radaris.listing_url(p))
    path = radaris.listing_url(person)
    assert optouts.find(f"http://127.0.0.1:8404{path}/") == (path, person)
    assert optouts.find("http://127.0.0.1:8404/p/Nobody/Here/U000") is None
    assert optouts.submit(path, person) == "processing"
    clock.now += 59
    assert not optouts.hidden(person) and optouts.snapshot()["pending"] == [path]
    assert optouts.submit(path, person) == "processing"  # a duplicate: counted, the clock is not restarted
    clock.now += 1
    assert optouts.hidden(person)
    assert optouts.submit(path, person) == "removed"
    snapshot = optouts.snapshot()
    assert snapshot["submissions"] == {path: 3} and snapshot["removed"] == [path] and snapshot["pending"] == []
    optouts.clear()
    assert not optouts.hidden(person) and optouts.snapshot()["submissions"] == {}


def test_processing_is_read_from_the_config_when_asked():
    config = {"optout_processing_seconds": 86400.0}
    optouts, clock = state(config)
    person = PEOPLE[0]
    optouts.submit("/x", person)
    clock.now += 10
    assert not optouts.hidden(person)
    config["optout_processing_seconds"] = 5.0  # a test shortens it while the request is pending
    assert optouts.hidden(person)


def test_a_confirmation_link_starts_processing_until_it_expires():
    config = {"optout_processing_seconds": 30.0, "optout_link_seconds": 100.0}
    optouts, clock = state(config)
    person, unconfirmed = PEOPLE[1], PEOPLE[2]
    assert optouts.submit("/a", person, needs_confirmation=True) == "waiting"
    optouts.submit("/b", unconfirmed, needs_confirmation=True)
    first = optouts.issue_token("/a")
    clock.now += 50
    second = optouts.issue_token("/a")  # submitted again: another link
    clock.now += 60
    assert optouts.confirm(first) == "expired" and optouts.confirm("nope") == "unknown"
    assert optouts.snapshot()["confirmed"] == []
    assert optouts.confirm(second) == "confirmed" and optouts.confirm(second) == "already"
    clock.now += 29
    assert not optouts.hidden(person)
    clock.now += 1
    assert optouts.hidden(person) and optouts.snapshot()["confirmed"] == ["/a"]
    clock.now += 10_000
    assert not optouts.hidden(unconfirmed) and optouts.snapshot()["pending"] == ["/b"]  # never confirmed


def test_relisting_takes_the_configured_share_of_people_the_same_every_time_and_only_once():
    config = {"optout_processing_seconds": 10.0, "relist_share": 0.3, "relist_seconds": 100.0}
    optouts, clock = state(config)
    chosen = [p for p in PEOPLE if optouts.relists(p)]
    assert chosen == [p for p in PEOPLE if digest("radaris", "relist", person_key(p)) < 0.3 * 2**64]
    assert 0.25 < len(chosen) / len(PEOPLE) < 0.35
    back, stays = chosen[0], next(p for p in PEOPLE if not optouts.relists(p))
    optouts.submit("/back", back)
    optouts.submit("/stays", stays)
    clock.now += 10 + 99
    assert optouts.hidden(back) and optouts.hidden(stays)
    clock.now += 1
    snapshot = optouts.snapshot()
    assert not optouts.hidden(back) and optouts.hidden(stays)
    assert snapshot["relisted"] == ["/back"] and snapshot["removed"] == ["/stays"]
    assert optouts.submit("/back", back) == "processing"  # a new request for the listing that came back
    clock.now += 10 + 1000
    snapshot = optouts.snapshot()
    assert optouts.hidden(back) and snapshot["removed"] == ["/back", "/stays"] and snapshot["relisted"] == ["/back"]
    assert snapshot["submissions"] == {"/back": 2, "/stays": 1}
    config["relist_share"] = 0
    assert not any(map(optouts.relists, PEOPLE))


def test_a_solved_captcha_token_is_good_once():
    optouts, _ = state({})
    token = optouts.solve_captcha()
    assert optouts.captcha_solved(token) and not optouts.captcha_solved(token) and not optouts.captcha_solved("")


def test_helpers():
    assert listing_path("http://h:1/person/J%20S/ab/?x=1") == "/person/J S/ab"
    assert valid_email("optout+abc@example.org") and not valid_email("no at") and not valid_email("a@b")


@pytest.fixture
async def thatsthem_app(tmp_path):
    mailroom.configure({"maildir": str(tmp_path / "mail")})
    app = build_app(SERVICES["thatsthem"], {})
    async with TestClient(TestServer(app)) as client:
        yield client
    mailroom.configure({})


async def test_thatsthem_takes_deletion_requests_by_email_only(thatsthem_app, tmp_path):
    client = thatsthem_app
    page = await (await client.get("/optout")).text()
    assert thatsthem.PRIVACY_ADDRESS in page and "only by e-mail" in page
    person = next(p for p in PEOPLE if thatsthem.listing_url(p))
    path = thatsthem.listing_url(person)
    assert (await client.get(path)).status == 200
    await client.post("/_sandbox/config", json={"optout_processing_seconds": 3600})

    def letter(body: str) -> None:
        mailroom.deliver(mailroom.compose("optout+r1@example.org", "Privacy@ThatsThem.test", "Deletion request", body))

    letter(f"Please delete http://127.0.0.1:8405{path}\nand again: http://127.0.0.1:8405{path}\nThanks")
    letter("Please delete everything you hold on me.")
    letter("Please delete http://127.0.0.1:8405/person/No-Body/0123456789")
    report = await (await client.get("/__optouts")).json()
    assert report["submissions"] == {path: 1} and report["unmatched"] == 2 and report["pending"] == [path]
    assert (await client.get(path)).status == 200
    await client.post("/_sandbox/config", json={"optout_processing_seconds": 0.001})
    gone = await client.get(path)
    assert gone.status == 404 and "Record not found" in await gone.text()
    first, last = person.first_name, person.last_name
    found = await (await client.get(f"/name/{first}-{last}")).text()
    assert path not in found
    assert (await (await client.get("/__optouts")).json())["removed"] == [path]
    assert not (tmp_path / "mail").exists()  # letters to the broker's address never reach the user's mailbox
