"""crawler.store.mailings against PostgreSQL: a mailing per file content with every row, the row states
(claimed, sending committed before a send, sent / unknown / invalid / queued again), recovery after a
crash ('sending' -> 'unknown', 'claimed' -> 'queued', MAILING_RESEND_UNKNOWN), one run at a time per
mailing, a changed message refused, and nothing personal in plaintext."""

from __future__ import annotations

import pytest

from crawler.db.pool import close_pools
from crawler.removal.mailing import parse_text
from crawler.store import mailings as store
from support import store_settings

pytestmark = pytest.mark.integration

SUBJECT, BODY = "Complete your registration", "Token {token}."


@pytest.fixture
async def settings(database_url, tmp_path):
    settings = store_settings(database_url, tmp_path)
    yield settings
    await close_pools()


def mailing_file(content: str):
    from hashlib import sha256

    from crawler.removal.mailing import MailingFile

    header, column, rows = parse_text(content)
    return MailingFile(sha256(content.encode()).hexdigest(), "utf-8", header, column, tuple(rows))


def unique_list(tag: str) -> str:
    return f"email\na-{tag}@example.com\nbad\nb-{tag}@example.com\nA-{tag}@EXAMPLE.COM\na-{tag}@Example.com\n"


def states(db, mailing_id) -> dict[int, tuple]:
    found = db.execute(
        "SELECT row_number, state, reason, attempts FROM mailing_rows WHERE mailing_id = %s", (mailing_id,)
    ).fetchall()
    return {row: (state, reason, attempts) for row, state, reason, attempts in found}


async def test_a_mailing_is_made_once_per_content_with_every_row(settings, db, request):
    content = mailing_file(unique_list(request.node.name[:20]))
    first = await store.open_mailing(settings, content, SUBJECT, BODY)
    again = await store.open_mailing(settings, content, SUBJECT, BODY)
    assert first.created and not again.created and first.id == again.id
    assert states(db, first.id) == {
        2: ("queued", None, 0),
        3: ("invalid", "syntax", 0),
        4: ("queued", None, 0),
        5: ("queued", None, 0),  # another local part (case): another address
        6: ("invalid", "duplicate of row 2", 0),
    }
    with pytest.raises(store.TemplateChanged):
        await store.open_mailing(settings, content, "Another subject", BODY)
    # no plaintext: the addresses and tokens are ciphertexts; invalid rows keep no address at all
    dump = db.execute("SELECT mailing_rows::text FROM mailing_rows WHERE mailing_id = %s", (first.id,)).fetchall()
    assert not any("example.com" in text.lower() for (text,) in dump)
    assert db.execute(
        "SELECT count(*) FROM mailing_rows WHERE mailing_id = %s AND state = 'invalid' AND address_ciphertext IS NULL",
        (first.id,),
    ).fetchone() == (2,)


async def test_the_state_machine_and_recovery_after_a_crash(settings, db, request):
    tag = request.node.name[:20]
    mailing = await store.open_mailing(settings, mailing_file(unique_list(tag)), SUBJECT, BODY)
    claimed = await store.claim(settings, mailing.id, 2)
    assert [(r.row, r.address) for r in claimed] == [(2, f"a-{tag}@example.com"), (4, f"b-{tag}@example.com")]
    assert len({r.token for r in claimed}) == 2 and "@" not in repr(claimed[0])
    assert await store.claim(settings, mailing.id, 5) != []  # row 5; the claimed ones are not claimed twice
    assert await store.begin_send(settings, mailing.id, 2)
    assert not await store.begin_send(settings, mailing.id, 2)  # already sending: never a second send
    await store.finish(settings, mailing.id, 2, "sent", message_id="msg_1")
    assert await store.begin_send(settings, mailing.id, 4)
    # the run dies here: row 4 'sending' (its request may have left), row 5 'claimed'
    lost, requeued = await store.recover(settings, mailing.id, resend_unknown=False)
    assert (lost, requeued) == ([4], [])
    found = states(db, mailing.id)
    assert found[2][0] == "sent" and found[4][0] == "unknown" and found[5] == ("queued", None, 0)
    assert found[4][1].startswith("answer_lost") and found[4][2] == 1
    summary = await store.summary(settings, mailing.id)
    assert (summary.counts["sent"], summary.counts["unknown"], summary.valid) == (1, 1, 3)
    assert summary.invalid_by_reason() == {"syntax": 1, "duplicate": 1}
    assert [(row, state) for row, state, _ in summary.review] == [(3, "invalid"), (4, "unknown"), (6, "invalid")]
    # the next run: unknown stays unknown; with MAILING_RESEND_UNKNOWN it is queued again
    assert await store.recover(settings, mailing.id, resend_unknown=False) == ([], [])
    assert await store.recover(settings, mailing.id, resend_unknown=True) == ([], [4])
    assert [r.row for r in await store.claim(settings, mailing.id, 10)] == [4, 5]
    # nothing accepted (provider down): queued again for a later run; refused by the provider: invalid
    assert await store.begin_send(settings, mailing.id, 4) and await store.begin_send(settings, mailing.id, 5)
    await store.finish(settings, mailing.id, 4, "queued", reason="unavailable: mail API answered 503")
    await store.finish(settings, mailing.id, 5, "invalid", reason="provider_rejected: 400")
    found = states(db, mailing.id)
    assert found[4] == ("queued", "unavailable: mail API answered 503", 2) and found[5][0] == "invalid"
    with pytest.raises(ValueError, match="not 'claimed'"):
        await store.finish(settings, mailing.id, 4, "claimed")


async def test_one_run_at_a_time_per_mailing(settings, request):
    mailing = await store.open_mailing(settings, mailing_file(unique_list(request.node.name[:20])), SUBJECT, BODY)
    first, second = store.MailingLock(settings, mailing.id), store.MailingLock(settings, mailing.id)
    assert await first.acquire()
    try:
        assert not await second.acquire()
    finally:
        await first.release()
    assert await second.acquire()  # released with its connection (as when a process dies)
    await second.release()
