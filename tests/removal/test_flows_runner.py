"""The flow runner's decisions that need no broker, against the real store (PostgreSQL) and a real Maildir
inbox: a changed flow restarts at step 0 unless this attempt's submission was made; a confirmation e-mail
not seen in time gives a new attempt (failed at the maximum); not yet due, the request is looked at again
after MAIL_INBOX_POLL_SECONDS; ``-a request`` is checked. Clocks are injected."""

from __future__ import annotations

import sys
import uuid
from datetime import timedelta

import psycopg
import pytest

from crawler.db.pool import close_pools
from crawler.extraction import load_definitions
from crawler.removal.flows import EmailConfirmation, flow_values
from crawler.removal.inbox import MaildirInbox
from crawler.removal.runner import FlowRunner, Services, Stop
from crawler.spider_args import PersonQuery, SpiderArgumentError
from crawler.store import removal_flow, removals
from crawler.store import scans as store
from spiders.optout import parse_request_id
from support import ROOT, store_settings

sys.path.insert(0, str(ROOT / "tests" / "api"))
from api_client import write_listing

pytestmark = pytest.mark.integration

SITE = "fastpeople"
PERSON = PersonQuery("Zebulon", "Quixley", state="IL")


class Stats:
    def __init__(self):
        self.values = {}

    def inc_value(self, key, count=1):
        self.values[key] = self.values.get(key, 0) + count


@pytest.fixture
async def settings(database_url, tmp_path):
    settings = store_settings(database_url, tmp_path)
    settings.set("SCREENSHOTS_DIR", str(tmp_path / "shots"))
    settings.set("REMOVAL_MAX_ATTEMPTS", 2)
    settings.set("MAIL_INBOX_POLL_SECONDS", 0.01)
    yield settings
    await close_pools()


async def new_request(settings) -> removals.RemovalRequest:
    owner = f"run-{uuid.uuid4().hex[:8]}"
    scan_id = await store.create_scan(settings, PERSON, "scan", [SITE])
    with psycopg.connect(settings["DATABASE_URL"], autocommit=True) as conn:
        conn.execute("UPDATE scans SET owner = %s WHERE id = %s", (owner, scan_id))
    url = f"http://127.0.0.1:9/person/{uuid.uuid4().hex[:8]}"
    finding = write_listing(settings, scan_id, SITE, {"listing_url": url, "full_name": "Zebulon Quixley"})[0]
    request = await removals.request_removal(settings, owner, finding)
    return await removals.load_request(settings, request.id)


def runner(settings, request, tmp_path, clock=None) -> FlowRunner:
    definition = load_definitions()[SITE]
    services = Services(settings, Stats(), inbox=MaildirInbox(tmp_path / "Maildir"), clock=clock)
    return FlowRunner(None, request, definition, services)


async def test_a_changed_flow_restarts_at_step_0_unless_the_submission_was_made(settings, tmp_path):
    request = await new_request(settings)
    await removal_flow.advance(settings, request.id, 3, flow_sha256="0" * 64)
    flow_runner = runner(settings, await removals.load_request(settings, request.id), tmp_path)
    assert await flow_runner.check_flow_version() == 0
    after = await removals.get_request(settings, request.id)
    assert (after.step, after.flow_sha256) == (0, flow_runner.flow.sha256)
    assert flow_runner.services.stats.values["optout/fastpeople/flow_restarted"] == 1
    # the submission made this attempt: the flow goes on where it is
    assert await removal_flow.begin_submission(settings, request.id, 1, 2)
    await removal_flow.finish_submission(settings, request.id, 1, "sent")
    await removal_flow.advance(settings, request.id, 3, flow_sha256="0" * 64)
    flow_runner = runner(settings, await removals.load_request(settings, request.id), tmp_path)
    assert await flow_runner.check_flow_version() == 3
    assert (await removals.get_request(settings, request.id)).step == 3


async def submitted(settings, request):
    assert await removal_flow.begin_submission(settings, request.id, request.attempt, 2)
    await removal_flow.finish_submission(settings, request.id, request.attempt, "sent")
    return await removals.load_request(settings, request.id)


async def test_no_confirmation_email_looks_again_later_then_a_new_attempt_then_failed(settings, tmp_path):
    step = EmailConfirmation("fastpeople", "/removal/confirm/", 24)
    request = await submitted(settings, await new_request(settings))
    start = request.submitted_at
    # within the 24 hours: awaiting, looked at again after the poll interval
    flow_runner = runner(settings, request, tmp_path, clock=lambda: start + timedelta(hours=1))
    flow_runner.values = {"email": removals.tagged_address(settings, request.reference)}
    with pytest.raises(Stop):
        await flow_runner.step_email_confirmation(4, step)
    waiting = await removals.get_request(settings, request.id)
    assert (waiting.status, waiting.step, waiting.attempt) == ("awaiting_confirmation", 4, 1)
    assert waiting.next_action_at - (start + timedelta(hours=1)) < timedelta(seconds=1)
    # past them: a new attempt
    late = runner(settings, await removals.load_request(settings, request.id), tmp_path)
    late.services.clock = lambda: start + timedelta(hours=25)
    late.values = flow_runner.values
    with pytest.raises(Stop):
        await late.step_email_confirmation(4, step)
    again = await removals.get_request(settings, request.id)
    assert (again.status, again.step, again.attempt, again.submission) == ("requested", 0, 2, "none")
    # the second attempt meets the same: failed, REMOVAL_MAX_ATTEMPTS = 2
    request = await submitted(settings, again)
    last = runner(settings, request, tmp_path, clock=lambda: request.submitted_at + timedelta(hours=25))
    last.values = flow_runner.values
    with pytest.raises(Stop):
        await last.step_email_confirmation(4, step)
    final = await removals.get_request(settings, request.id)
    assert final.status == "failed" and final.reason == "no confirmation e-mail within 24 h after 2 attempts"


def test_the_request_argument_is_a_positive_whole_number():
    assert parse_request_id({}) is None and parse_request_id({"request": " 12 "}) == 12
    for bad in ("x", "-1", "0", "1.5"):
        with pytest.raises(SpiderArgumentError, match="-a request: expected a removal request id"):
            parse_request_id({"request": bad})


async def test_a_flow_without_a_submission_step_counts_the_persons_task_as_the_submission(settings, tmp_path):
    # a broker that takes removals by phone only: what the person does IS the request
    import yaml

    from crawler.extraction.definitions import load_definition_text

    raw = dict(load_definitions()[SITE].raw)
    raw["opt_out"] = {
        "url": "/removal",
        "steps": [{"human": {"kind": "phone", "instructions": "Call the broker's privacy line and ask for removal."}}],
    }
    definition = load_definition_text(yaml.safe_dump(raw), f"{SITE}.yaml")
    request = await new_request(settings)
    services = Services(settings, Stats(), inbox=MaildirInbox(tmp_path / "Maildir"))
    flow_runner = FlowRunner(None, request, definition, services)
    address = removals.tagged_address(settings, request.reference)
    flow_runner.values = flow_values(flow_runner.flow, request.listing_url, request.person, address, request.reference)
    with pytest.raises(Stop):
        await flow_runner.step_human(0, flow_runner.flow.steps[0])
    waiting = await removals.get_request(settings, request.id)
    assert waiting.status == "needs_human"
    with psycopg.connect(settings["DATABASE_URL"]) as conn:
        task_id = conn.execute("SELECT id FROM removal_tasks WHERE request_id = %s", (request.id,)).fetchone()[0]
    assert await removal_flow.complete_task(settings, waiting.owner, task_id)
    done = await removals.get_request(settings, request.id)
    # submitted (so verification is due after REMOVAL_CONFIRM_RESCAN_HOURS), and a verified removal is allowed
    assert (done.status, done.submission) == ("submitted", "sent") and done.submitted_at is not None
    await removal_flow.mark_removed(settings, request.id)
    assert (await removals.get_request(settings, request.id)).status == "removed"
