"""The mailing job end to end: ``scrapy crawl mailing`` against the sandbox's mail service (started alone
for this module, its own Maildir), on the test database; ``/__sent`` is the truth of what went out.

Each valid address once (and reruns add nothing), the message with the recipient's own token, a lost
answer ``unknown`` and never re-sent (unless MAILING_RESEND_UNKNOWN), a SIGKILL mid-run and a rerun still
once per address, 401 / 429 / 503 handled by the middlewares, a bad argument one line before anything
starts, and never an address, a token or a body in the crawl's DEBUG log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter

import pytest
from mail_api_support import MailSandbox, mail_sandbox

from crawler.store.mailings import token_context
from support import ROOT, SCRAPY, crawl_keyring, http, options, run_scrapy

pytestmark = pytest.mark.e2e

INTERVAL = "0.2"  # the sandbox's pace and the client's, scaled down from 10 s
FAST_RETRIES = {"RETRY_BACKOFF_BASE": "0.2", "RETRY_BACKOFF_MAX": "1"}


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    with mail_sandbox(tmp_path_factory.mktemp("mailing")) as sandbox:
        yield sandbox


def crawl_args(box: MailSandbox, path, settings: dict | None = None, **arguments) -> list[str]:
    merged = {"MAIL_API_URL": box.url, "MAIL_API_MIN_INTERVAL_SECONDS": INTERVAL, **FAST_RETRIES, **(settings or {})}
    return ["crawl", "mailing", *options({"csv": str(path), **arguments}, merged)]


def mailing(box, env, path, settings=None, timeout=120, **arguments) -> subprocess.CompletedProcess:
    return run_scrapy(crawl_args(box, path, settings, **arguments), env, timeout=timeout)


def mailing_list(tmp_path, count: int, name: str = "list.csv", tag: str = "") -> tuple:
    """A file with ``count`` valid addresses, plus invalid, empty and duplicate rows; (path, valid addresses)."""
    valid = [f"member{i}{tag}@example.org" for i in range(count)]
    lines = ["Name,E-mail"]
    for i, address in enumerate(valid):
        lines.append(f"Member {i},{address}")
        if i == 1:
            lines += [
                "Nobody,",
                "Broken,member-at-example.org",
                f"Again,{address.replace('example.org', 'EXAMPLE.ORG')}",
            ]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path, valid


def sent_to(box: MailSandbox) -> Counter:
    return Counter(message["to"] for message in box.sent())


def rows(db) -> list[tuple]:
    """The newest mailing's rows: (row, state, reason, message id, token ciphertext, mailing id)."""
    return db.execute(
        "SELECT r.row_number, r.state, r.reason, r.message_id, r.token_ciphertext, r.mailing_id FROM mailing_rows r "
        "JOIN mailings m ON m.id = r.mailing_id WHERE m.id = (SELECT max(id) FROM mailings) ORDER BY r.row_number"
    ).fetchall()


def assert_nothing_secret_logged(log: str, box: MailSandbox, addresses) -> None:
    assert "Traceback" not in log, log[-3000:]
    for message in box.sent():
        token = message["body"].split("token ")[1].split(" ")[0]
        assert token not in log and message["body"] not in log
    for address in addresses:
        assert address not in log
    for token in http(f"{box.url}/__tokens").json():
        assert token not in log


def test_each_valid_address_once_with_its_own_token_and_a_rerun_continues(box, crawl_env, tmp_path, db):
    box.configure(reset=True, min_interval_seconds=float(INTERVAL))
    path, valid = mailing_list(tmp_path, 6)
    done = mailing(box, crawl_env, path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sent_to(box) == Counter(valid)
    assert box.stats()["rate_limited"] == 0
    # the default message, with the token stored (encrypted) for that row
    ring = crawl_keyring()
    by_id = {m["message_id"]: m for m in box.sent()}
    stored = [r for r in rows(db) if r[1] == "sent"]
    assert len(stored) == 6
    for row_number, _, _, message_id, token_ciphertext, mailing_id in stored:
        token = ring.decrypt_text(token_ciphertext, token_context(mailing_id, row_number))
        assert by_id[message_id]["subject"] == "Complete your registration"
        assert by_id[message_id]["body"] == f"Thank you for signing up. Please verify your token {token} to continue."
    assert len({m["body"] for m in box.sent()}) == 6  # a fresh token per recipient
    invalid = [(r[0], r[2]) for r in rows(db) if r[1] == "invalid"]
    assert invalid == [(4, "empty"), (5, "syntax"), (6, "duplicate of row 3")]
    log = done.stderr
    assert "summary: sent 6 of 6 valid (6 in this run" in log
    assert "invalid 3 (duplicate 1, empty 1, syntax 1); unknown 0" in log
    assert "for review: invalid (empty): 1 row(s): 4" in log
    assert "for review: invalid (duplicate): 1 row(s): 6 (of row 3)" in log
    assert_nothing_secret_logged(log, box, valid)

    # the same content under another name: the same mailing, nothing sent again
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(path.read_bytes())
    again = mailing(box, crawl_env, copy)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "(continuing: this file was run before)" in again.stderr
    assert "summary: sent 6 of 6 valid (0 in this run" in again.stderr
    assert sent_to(box) == Counter(valid)


def test_a_lost_answer_is_unknown_reported_and_not_resent(box, crawl_env, tmp_path, db):
    box.configure(reset=True, min_interval_seconds=float(INTERVAL), drop_next=1)
    path, valid = mailing_list(tmp_path, 3, tag="-lost")
    done = mailing(box, crawl_env, path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sent_to(box) == Counter(valid)  # the dropped one went out, once
    assert [(r[0], r[1]) for r in rows(db) if r[1] in ("sent", "unknown")] == [(2, "unknown"), (3, "sent"), (7, "sent")]
    assert "unknown 1" in done.stderr and "for review: unknown (answer_lost): 1 row(s): 2" in done.stderr

    again = mailing(box, crawl_env, path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert sent_to(box) == Counter(valid)  # not re-sent
    assert "for review: unknown (answer_lost): 1 row(s): 2" in again.stderr

    # a person reviewed it and allows re-sending: once more, that row only
    resend = mailing(box, crawl_env, path, settings={"MAILING_RESEND_UNKNOWN": "true"})
    assert resend.returncode == 0, resend.stderr[-3000:]
    assert sent_to(box) == Counter(valid) + Counter([valid[0]])
    assert "unknown 0" in resend.stderr
    assert_nothing_secret_logged(done.stderr + again.stderr + resend.stderr, box, valid)


def test_sigkill_mid_run_then_rerun_sends_each_valid_address_once(box, crawl_env, tmp_path, db):
    box.configure(reset=True, min_interval_seconds=float(INTERVAL))
    path, valid = mailing_list(tmp_path, 20, tag="-kill")
    process = subprocess.Popen(
        [*SCRAPY, *crawl_args(box, path)],
        cwd=ROOT,
        env=crawl_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while sum(sent_to(box).values()) < 5:
            assert time.monotonic() < deadline and process.poll() is None, "the crawl sent nothing"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    assert sum(sent_to(box).values()) < 20  # killed mid-run
    done = mailing(box, crawl_env, path)
    assert done.returncode == 0, done.stderr[-3000:]
    sent = sent_to(box)
    unknown = [r[0] for r in rows(db) if r[1] == "unknown"]
    # never twice; every address once, except a row the kill left 'sending' (reported, at most once)
    assert max(sent.values()) == 1
    assert len(unknown) <= 1
    assert set(sent) <= set(valid) and len(sent) >= len(valid) - len(unknown)
    assert [r for r in rows(db) if r[1] in ("queued", "claimed", "sending")] == []


def test_sigterm_finishes_the_send_in_flight_and_leaves_nothing_unknown(box, crawl_env, tmp_path, db):
    box.configure(reset=True, min_interval_seconds=float(INTERVAL))
    path, valid = mailing_list(tmp_path, 20, tag="-term")
    process = subprocess.Popen(
        [*SCRAPY, *crawl_args(box, path)],
        cwd=ROOT,
        env=crawl_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while sum(sent_to(box).values()) < 4:
        assert time.monotonic() < deadline and process.poll() is None, "the crawl sent nothing"
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, log = process.communicate(timeout=60)
    assert process.returncode == 0, log[-3000:]
    states = Counter(r[1] for r in rows(db))
    assert states["sending"] == states["claimed"] == states["unknown"] == 0
    assert 0 < states["sent"] == sum(sent_to(box).values()) < 20
    assert "finishing the send in flight" in log
    done = mailing(box, crawl_env, path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sent_to(box) == Counter(valid)


def test_401_429_are_handled_and_each_address_goes_once(box, crawl_env, tmp_path):
    # the provider is slower than the client believes (429 + Retry-After), revokes a token once (401),
    # and fails twice (503): every send still goes out once
    box.configure(reset=True, min_interval_seconds=1, unauthorized_next=1, fail_next=2)
    path, valid = mailing_list(tmp_path, 4, tag="-quirks")
    done = mailing(box, crawl_env, path, settings={"MAIL_API_MIN_INTERVAL_SECONDS": "0.3"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert sent_to(box) == Counter(valid)
    stats = box.stats()
    assert stats["statuses"]["503"] == 2 and stats["unauthorized"] == 1 and stats["rate_limited"] >= 1
    assert stats["token_grants"] == 2
    assert "summary: sent 4 of 4 valid" in done.stderr
    assert_nothing_secret_logged(done.stderr, box, valid)


def test_a_bad_argument_stops_the_crawl_before_it_starts(box, crawl_env, tmp_path):
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\x00\x01\x02 not text")
    for path, message in (
        (tmp_path / "missing.csv", "no such file"),
        (binary, "is not a text CSV in UTF-8 or Latin-1"),
    ):
        done = mailing(box, crawl_env, path)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: -a csv: {path}: {message}"), done.stderr
