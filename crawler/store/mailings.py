"""The CSV mailing job's state (tables ``mailings`` and ``mailing_rows``, migration 0007): every SQL
statement of the job, and its encryption.

A row goes ``queued -> claimed -> sending -> sent | unknown | invalid``:

- ``open_mailing`` finds the file's mailing by the sha256 of its content, or creates it with all of its
  rows in one transaction (valid ones ``queued`` with a fresh token, invalid ones ``invalid`` with their
  reason and no address): a mailing that exists has every row, and a rerun continues it.
- ``MailingLock`` holds a session advisory lock on the mailing for the whole run (its own connection),
  so one run at a time sends a mailing; the server drops the lock when the process dies.
- ``recover`` (under the lock, before sending): a row still ``sending`` was being sent by a run that
  died, so its request may have reached the provider: it becomes ``unknown`` (reported for review).
  ``claimed`` rows go back to ``queued``. With ``resend_unknown`` the unknown rows are queued again.
- ``claim`` takes the next queued rows (``claimed``) and decrypts their address and token in memory;
  ``begin_send`` (``claimed -> sending``, attempts + 1) is committed before the request leaves;
  ``finish`` records the outcome: ``sent`` with the message id, ``unknown`` (answer lost), ``invalid``
  (the provider refused the address), or ``queued`` again (nothing was accepted: a later run sends it).

Addresses and tokens are AES-GCM ciphertexts bound to (mailing, row, field); the unique index is an
HMAC of the canonical address (crawler/removal/mailing.py: domain lower-cased, local part as written),
since the key ring's ``blind_index`` case-folds the whole value and would merge ``Ann@`` and ``ann@``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psycopg

from crawler.db.embedded import database_url
from crawler.db.pool import run_in_transaction
from crawler.removal.mailing import MailingFile, new_token
from crawler.security import context, keyring_from_settings

INSERT_MAILING = """
INSERT INTO mailings (file_sha256, rows_total, header, address_column, encoding, subject, body_template)
VALUES (%s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (file_sha256) DO NOTHING
RETURNING id"""
FIND_MAILING = "SELECT id, subject, body_template FROM mailings WHERE file_sha256 = %s"
INSERT_ROW = """
INSERT INTO mailing_rows (mailing_id, row_number, address_ciphertext, address_index, token_ciphertext, key_id,
                          state, reason)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"""
SENDING_TO_UNKNOWN = """
UPDATE mailing_rows SET state = 'unknown', reason = 'answer_lost: the run stopped while it was being sent',
    updated_at = now()
WHERE mailing_id = %s AND state = 'sending'
RETURNING row_number"""
CLAIMED_TO_QUEUED = """
UPDATE mailing_rows SET state = 'queued', updated_at = now() WHERE mailing_id = %s AND state = 'claimed'"""
UNKNOWN_TO_QUEUED = """
UPDATE mailing_rows SET state = 'queued', reason = 'resent: MAILING_RESEND_UNKNOWN', updated_at = now()
WHERE mailing_id = %s AND state = 'unknown'
RETURNING row_number"""
CLAIM = """
UPDATE mailing_rows SET state = 'claimed', updated_at = now()
WHERE (mailing_id, row_number) IN (
    SELECT mailing_id, row_number FROM mailing_rows
    WHERE mailing_id = %s AND state = 'queued' ORDER BY row_number LIMIT %s FOR UPDATE SKIP LOCKED)
RETURNING row_number, address_ciphertext, token_ciphertext"""
BEGIN_SEND = """
UPDATE mailing_rows SET state = 'sending', attempts = attempts + 1, sending_at = now(), updated_at = now()
WHERE mailing_id = %s AND row_number = %s AND state = 'claimed'
RETURNING row_number"""
FINISH = """
UPDATE mailing_rows SET state = %(state)s, message_id = %(message_id)s, reason = %(reason)s, updated_at = now(),
    sent_at = CASE WHEN %(state)s = 'sent' THEN now() ELSE sent_at END
WHERE mailing_id = %(mailing)s AND row_number = %(row)s AND state = 'sending'"""
COUNTS = "SELECT state, count(*) FROM mailing_rows WHERE mailing_id = %s GROUP BY state"
REVIEW = """
SELECT row_number, state, reason FROM mailing_rows
WHERE mailing_id = %s AND state IN ('invalid', 'unknown') ORDER BY row_number"""
FINISHED = "UPDATE mailings SET finished_at = now(), updated_at = now() WHERE id = %s"
# one advisory lock key per mailing, apart from other users of advisory locks (migrations use one key)
LOCK = "SELECT pg_try_advisory_lock(hashtextextended('mailing:' || %s::text, 0))"

FINAL_STATES = ("sent", "unknown", "invalid", "queued")


class TemplateChanged(Exception):
    """The file's mailing was started with another subject or body."""


def address_context(mailing_id: int, row: int) -> bytes:
    return context.mailing_row(mailing_id, row, "address")


def token_context(mailing_id: int, row: int) -> bytes:
    return context.mailing_row(mailing_id, row, "token")


def address_index(ring, address: str) -> bytes:
    """HMAC of the canonical address, case kept (see the module docstring)."""
    return ring.keyed_digest(b"mailing_address|" + address.encode())


@dataclass(frozen=True)
class Mailing:
    id: int
    subject: str
    body_template: str
    created: bool  # this run created it (False: a rerun continues it)


@dataclass(frozen=True)
class Recipient:
    """A claimed row, decrypted in memory only. Its repr shows the row number alone."""

    row: int
    address: str = field(repr=False)
    token: str = field(repr=False)


@dataclass
class Summary:
    counts: Counter  # state -> rows
    review: list[tuple[int, str, str]]  # (row, state, reason) of invalid and unknown rows

    @property
    def valid(self) -> int:
        return sum(n for state, n in self.counts.items() if state != "invalid")

    def invalid_by_reason(self) -> Counter:
        return Counter(reason_code(reason) for _, state, reason in self.review if state == "invalid")


def reason_code(reason: str | None) -> str:
    """``duplicate of row 3`` -> ``duplicate``; ``provider_rejected: ...`` -> ``provider_rejected``."""
    text = (reason or "unknown").split(":", 1)[0]
    return text.split(" of row ", 1)[0]


async def open_mailing(settings, mailing_file: MailingFile, subject: str, body: str) -> Mailing:
    """The mailing of this file's content: created with its rows, or the existing one (TemplateChanged
    when that one was started with another subject or body)."""
    ring = keyring_from_settings(settings)

    async def work(conn):
        cursor = await conn.execute(
            INSERT_MAILING,
            (
                mailing_file.sha256,
                mailing_file.records,
                mailing_file.header,
                mailing_file.column,
                mailing_file.encoding,
                subject,
                body,
            ),
        )
        created = await cursor.fetchone()
        if created is None:
            found = await (await conn.execute(FIND_MAILING, (mailing_file.sha256,))).fetchone()
            if (found[1], found[2]) != (subject, body):
                raise TemplateChanged(f"mailing {found[0]}")
            return Mailing(found[0], found[1], found[2], False)
        mailing_id = created[0]
        rows = []
        for row in mailing_file.rows:
            if row.valid:
                rows.append(
                    (
                        mailing_id,
                        row.number,
                        ring.encrypt(row.address, address_context(mailing_id, row.number)),
                        address_index(ring, row.address),
                        ring.encrypt(new_token(), token_context(mailing_id, row.number)),
                        ring.current_key_id,
                        "queued",
                        None,
                    )
                )
            else:
                rows.append((mailing_id, row.number, None, None, None, None, "invalid", row.describe()))
        async with conn.cursor() as cursor:
            await cursor.executemany(INSERT_ROW, rows)
        return Mailing(mailing_id, subject, body, True)

    return await run_in_transaction(settings, work)


class MailingLock:
    """One run at a time per mailing: a session advisory lock on a connection of its own."""

    def __init__(self, settings, mailing_id: int):
        self.settings, self.mailing_id = settings, mailing_id
        self.conn: psycopg.AsyncConnection | None = None

    async def acquire(self) -> bool:
        timeout = max(1, round(self.settings.getfloat("PG_CONNECT_TIMEOUT")))
        self.conn = await psycopg.AsyncConnection.connect(
            database_url(self.settings), autocommit=True, connect_timeout=timeout, application_name="crawler-mailing"
        )
        row = await (await self.conn.execute(LOCK, (self.mailing_id,))).fetchone()
        if not row[0]:
            await self.release()
            return False
        return True

    async def release(self) -> None:
        if self.conn is not None:
            await self.conn.close()  # the session's advisory lock goes with it
            self.conn = None


async def recover(settings, mailing_id: int, resend_unknown: bool) -> tuple[list[int], list[int]]:
    """Under the lock, before sending: (rows found 'sending' -> now 'unknown', rows queued again
    because MAILING_RESEND_UNKNOWN). Claimed rows go back to the queue."""

    async def work(conn):
        lost = [r[0] for r in await (await conn.execute(SENDING_TO_UNKNOWN, (mailing_id,))).fetchall()]
        await conn.execute(CLAIMED_TO_QUEUED, (mailing_id,))
        requeued = []
        if resend_unknown:
            requeued = [r[0] for r in await (await conn.execute(UNKNOWN_TO_QUEUED, (mailing_id,))).fetchall()]
        return sorted(lost), sorted(requeued)

    return await run_in_transaction(settings, work)


async def claim(settings, mailing_id: int, limit: int) -> list[Recipient]:
    """The next queued rows, now 'claimed', with their address and token decrypted."""
    ring = keyring_from_settings(settings)

    async def work(conn):
        return await (await conn.execute(CLAIM, (mailing_id, limit))).fetchall()

    claimed = sorted(await run_in_transaction(settings, work))
    return [
        Recipient(
            row,
            ring.decrypt_text(address, address_context(mailing_id, row)),
            ring.decrypt_text(token, token_context(mailing_id, row)),
        )
        for row, address, token in claimed
    ]


async def begin_send(settings, mailing_id: int, row: int) -> bool:
    """``claimed -> sending``, committed: only then may the request leave. False: not claimed any more."""

    async def work(conn):
        return await (await conn.execute(BEGIN_SEND, (mailing_id, row))).fetchone()

    return await run_in_transaction(settings, work) is not None


async def finish(
    settings, mailing_id: int, row: int, state: str, *, message_id: str | None = None, reason: str | None = None
) -> None:
    """The outcome of a send: 'sent' (message id), 'unknown', 'invalid' (provider refused) or 'queued'."""
    if state not in FINAL_STATES:
        raise ValueError(f"a send ends sent, unknown, invalid or queued, not {state!r}")

    async def work(conn):
        await conn.execute(
            FINISH, {"state": state, "message_id": message_id, "reason": reason, "mailing": mailing_id, "row": row}
        )

    await run_in_transaction(settings, work)


async def release_claimed(settings, mailing_id: int) -> None:
    """Claimed rows back to the queue (a run that stops early)."""

    async def work(conn):
        await conn.execute(CLAIMED_TO_QUEUED, (mailing_id,))

    await run_in_transaction(settings, work)


async def summary(settings, mailing_id: int) -> Summary:
    async def work(conn):
        counts = await (await conn.execute(COUNTS, (mailing_id,))).fetchall()
        review = await (await conn.execute(REVIEW, (mailing_id,))).fetchall()
        return counts, review

    counts, review = await run_in_transaction(settings, work)
    return Summary(Counter(dict(counts)), [(row, state, reason or "") for row, state, reason in review])


async def mark_finished(settings, mailing_id: int) -> None:
    async def work(conn):
        await conn.execute(FINISHED, (mailing_id,))

    await run_in_transaction(settings, work)
