"""The e-mail API provider end to end: real Scrapy crawls (tests/removal/mail_api_support.py) sending
through the project's middlewares to the sandbox's mail service, started alone for this module.

Each test starts the service afresh (``reset``) with a 1 s pace and reads what the server saw
(``/__sent``, ``/__stats``): the pace kept with no 429 after the first response, tokens renewed before
expiry and once after a 401, 400s never retried, 503s retried, a lost answer reported as unknown and
never re-sent. Every crawl logs at DEBUG, and no token, address, subject or body may appear in it.
"""

from __future__ import annotations

import itertools
import mailbox
from datetime import datetime

import pytest
from mail_api_support import MailCrawl, MailSandbox, mail_sandbox, run_mail_crawl

from sandbox.brokers import thatsthem
from sandbox.population import default_population
from support import http

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with mail_sandbox(tmp_path_factory.mktemp("mail"), also=("thatsthem",)) as sandbox:
        yield sandbox


def mails(count: int, invalid: tuple[int, ...] = ()) -> list[dict]:
    return [
        {
            "to": f"not-an-address-{i}" if i in invalid else f"recipient{i}+tag@example.org",
            "subject": f"Subject-{i}-x7",
            "body": f"Body {i}: verify token SECRETBODY{i}q to continue",
        }
        for i in range(count)
    ]


def sent_times(box: MailSandbox) -> list[float]:
    return [datetime.fromisoformat(s["at"]).timestamp() for s in box.sent()]


def assert_nothing_secret_logged(crawl: MailCrawl, box: MailSandbox, sends: list[dict]) -> None:
    assert "Traceback" not in crawl.log, crawl.log[-3000:]
    tokens = http(f"{box.url}/__tokens").json()
    assert tokens
    for secret in [*tokens, "Bearer", "sandbox-secret"]:
        assert secret not in crawl.log
    for mail in sends:
        for value in mail.values():
            assert value not in crawl.log


def test_the_pace_is_kept_and_tokens_are_renewed_before_they_expire(box, crawl_env, tmp_path):
    box.configure(reset=True, min_interval_seconds=1, token_seconds=2)
    sends = mails(6)
    crawl = run_mail_crawl(crawl_env, box.url, sends, tmp_path, concurrency=6)
    assert crawl.returncode == 0, crawl.log[-3000:]
    assert crawl.errors() == [None] * 6
    assert {r["message_id"] for r in crawl.results} == {s["message_id"] for s in box.sent()}
    assert sorted(s["to"] for s in box.sent()) == sorted(m["to"] for m in sends)
    assert {m["to"] for m in sends} <= {message["To"] for message in mailbox.Maildir(box.maildir, create=False)}
    stats = box.stats()
    assert stats["rate_limited"] == 0 and stats["unauthorized"] == 0
    assert stats["token_grants"] >= 3  # 5+ s of sending with 2 s tokens, renewed ahead of expiry
    times = sent_times(box)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 1.0
    assert 5 / (times[-1] - times[0]) >= 0.9  # at least 90 % of the published rate used
    assert_nothing_secret_logged(crawl, box, sends)


def test_a_401_gets_one_refresh_and_the_send_is_replayed(box, crawl_env, tmp_path):
    box.configure(reset=True, min_interval_seconds=1, unauthorized_next=1)
    sends = mails(3)
    crawl = run_mail_crawl(crawl_env, box.url, sends, tmp_path)
    assert crawl.errors() == [None] * 3, crawl.results
    assert [s["to"] for s in box.sent()] == [m["to"] for m in sends]
    stats = box.stats()
    assert stats["unauthorized"] == 1 and stats["token_grants"] == 2 and stats["rate_limited"] == 0
    assert "'auth/replays_after_401': 1" in crawl.log
    assert_nothing_secret_logged(crawl, box, sends)


def test_a_retry_after_on_the_first_response_wins_and_no_429_follows(box, crawl_env, tmp_path):
    box.configure(reset=True, min_interval_seconds=3)
    token = http(f"{box.url}/auth/token", data={"client_id": "sandbox-client", "client_secret": "sandbox-secret"})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    earlier = {"to": "earlier@example.org", "subject": "Earlier", "body": "Sent by another process"}
    assert http(f"{box.url}/send-email", data=earlier, headers=headers).status == 202
    sends = mails(2)
    crawl = run_mail_crawl(crawl_env, box.url, sends, tmp_path, settings={"MAIL_API_MIN_INTERVAL_SECONDS": "3"})
    assert crawl.errors() == [None, None], crawl.results
    stats = box.stats()
    assert stats["rate_limited"] == 1 and stats["statuses"]["429"] == 1  # the first answer only
    times = sent_times(box)
    assert [b - a >= 3 for a, b in itertools.pairwise(times)] == [True, True]
    assert_nothing_secret_logged(crawl, box, sends)


def test_a_400_is_rejected_at_once_and_503s_are_retried(box, crawl_env, tmp_path):
    box.configure(reset=True, min_interval_seconds=1, fail_next=2)
    sends = mails(3, invalid=(1,))
    crawl = run_mail_crawl(crawl_env, box.url, sends, tmp_path)
    assert crawl.errors() == [None, "MailRejected", None], crawl.results
    assert crawl.results[1]["reason"] == "mail API refused the message: 400 (invalid_address)"
    assert [s["to"] for s in box.sent()] == [sends[0]["to"], sends[2]["to"]]
    stats = box.stats()
    assert stats["statuses"]["400"] == 1 and stats["statuses"]["503"] == 2 and stats["rate_limited"] == 0
    assert_nothing_secret_logged(crawl, box, sends)


def test_retries_run_out_as_unavailable_and_a_lost_answer_is_unknown_and_not_resent(box, crawl_env, tmp_path, db):
    box.configure(reset=True, min_interval_seconds=1, fail_next=3, drop_next=1)
    sends = mails(3)
    # Scrapy's plain scheduler (the optout spider's): deferrals wait in place instead of in its heap
    settings = {"RETRY_TIMES": "2", "SCHEDULER": "scrapy.core.scheduler.Scheduler"}
    crawl = run_mail_crawl(crawl_env, box.url, sends, tmp_path, settings=settings)
    assert crawl.errors() == ["MailUnavailable", "MailOutcomeUnknown", None], crawl.results
    assert crawl.results[0]["reason"] == "mail API answered 503 (unavailable) (after retries)"
    assert [s["to"] for s in box.sent()] == [sends[1]["to"], sends[2]["to"]]  # the dropped one went out once
    assert box.stats()["statuses"]["503"] == 3
    # the sender records the failure; a replayable dead letter could send the mail a second time
    letters = db.execute("SELECT count(*) FROM dead_letters WHERE spider = 'mail_send_test'").fetchone()[0]
    assert letters == 0 and "(its sender records it)" in crawl.log
    assert_nothing_secret_logged(crawl, box, sends)


def test_a_deletion_request_to_a_brokers_privacy_address_reaches_that_broker(box, crawl_env, tmp_path):
    box.configure(reset=True, min_interval_seconds=1)
    path = next(filter(None, map(thatsthem.listing_url, default_population().people)))
    letter = {
        "to": thatsthem.PRIVACY_ADDRESS,
        "subject": "Deletion request ref-h2",
        "body": f"Please delete the record {box.urls['thatsthem']}{path} under the CCPA.",
    }
    crawl = run_mail_crawl(crawl_env, box.url, [letter], tmp_path)
    assert crawl.errors() == [None], crawl.results
    optouts = http(f"{box.urls['thatsthem']}/__optouts").json()
    assert optouts["submissions"] == {path: 1}
    assert [s["to"] for s in box.sent()] == [thatsthem.PRIVACY_ADDRESS]
    user_mail = mailbox.Maildir(box.maildir, create=False) if box.maildir.exists() else []
    assert thatsthem.PRIVACY_ADDRESS not in [message["To"] for message in user_mail]  # the broker's, not ours
    assert_nothing_secret_logged(crawl, box, [letter])


def test_wrong_credentials_make_sends_unavailable_without_logging_the_secret(box, crawl_env, tmp_path, db):
    box.configure(reset=True, min_interval_seconds=1)
    sends = mails(2)
    settings = {"MAIL_API_CLIENT_SECRET": "wrong-secret-h2", "AUTH_TOKEN_MAX_FAILURES": "1"}
    crawl = run_mail_crawl(crawl_env, box.url, sends, tmp_path, settings=settings)
    assert crawl.errors() == ["MailUnavailable", "MailUnavailable"], crawl.results
    assert "no token" in crawl.results[0]["reason"]
    assert box.sent() == [] and box.stats()["token_refusals"] >= 1
    assert "wrong-secret-h2" not in crawl.log and "Traceback" not in crawl.log
    # the sender records the failure; no replayable dead letter of a send
    assert db.execute("SELECT count(*) FROM dead_letters WHERE spider = 'mail_send_test'").fetchone()[0] == 0
