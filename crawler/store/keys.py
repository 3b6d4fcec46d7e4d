"""API keys: created once and shown once, stored as a sha256, looked up by that hash.

A key is ``csk_`` followed by 256 random bits (``secrets.token_urlsafe(32)``): a hash of that much
randomness cannot be walked back, so a plain sha256 (no salt, no slow KDF) is safe and lets
``authenticate`` find the key with one unique-index lookup. ``prefix`` (the first characters) is
kept so ``keys list`` and ``keys revoke`` can name a key without showing it.

``create_key``, ``list_keys`` and ``revoke_key`` block (the CLI, the demo); ``authenticate`` runs on
the API's event loop.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from crawler.db.embedded import database_url
from crawler.db.migrate import connect
from crawler.db.pool import run_in_transaction

KEY_PREFIX = "csk_"
SHOWN_PREFIX_CHARS = 12  # "csk_" + 8 characters of the random part
TOUCH_INTERVAL = 60.0  # last_used_at is written at most once a minute per key and process

INSERT_KEY = "INSERT INTO api_keys (user_name, key_sha256, prefix) VALUES (%s, %s, %s) RETURNING id"
LIST_KEYS = """
SELECT id, user_name, prefix, created_at, last_used_at, revoked_at FROM api_keys
WHERE %(user)s::text IS NULL OR user_name = %(user)s ORDER BY created_at, id"""
REVOKE_BY_ID = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s RETURNING id"
REVOKE_BY_PREFIX = "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE prefix = %s RETURNING id"
AUTHENTICATE = "SELECT id, user_name FROM api_keys WHERE key_sha256 = %s AND revoked_at IS NULL"
TOUCH = "UPDATE api_keys SET last_used_at = now() WHERE id = %s"


class ApiKeyError(ValueError):
    """A key management problem; the message names the key by prefix or id, never by its value."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    user: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def check_user(user: str) -> str:
    user = (user or "").strip()
    if not user or len(user) > 64 or not all(c.isalnum() or c in "-_.@" for c in user):
        raise ApiKeyError("--user: expected 1-64 letters, digits, '-', '_', '.' or '@'")
    return user


def _connect(settings):
    return connect(database_url(settings), settings.getfloat("PG_CONNECT_TIMEOUT"))


def create_key(settings, user: str) -> str:
    """A new key for ``user``; the only time the key itself exists outside its holder."""
    user = check_user(user)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with _connect(settings) as conn:
        conn.execute(INSERT_KEY, (user, key_digest(key), key[:SHOWN_PREFIX_CHARS]))
    return key


def list_keys(settings, user: str | None = None) -> list[ApiKey]:
    with _connect(settings) as conn:
        rows = conn.execute(LIST_KEYS, {"user": user}).fetchall()
    return [ApiKey(str(r[0]), *r[1:]) for r in rows]


def revoke_key(settings, prefix_or_id: str) -> int:
    """Revoke the key with this id or prefix; returns how many keys that was (0: none)."""
    value = (prefix_or_id or "").strip()
    if not value:
        raise ApiKeyError("expected a key prefix or id")
    try:
        key_id = str(uuid.UUID(value))
    except ValueError:
        key_id = None
    with _connect(settings) as conn:
        if key_id is not None:
            return len(conn.execute(REVOKE_BY_ID, (key_id,)).fetchall())
        if value.startswith(KEY_PREFIX) and len(value) > SHOWN_PREFIX_CHARS:
            value = value[:SHOWN_PREFIX_CHARS]  # the whole key given: its prefix names it
        return len(conn.execute(REVOKE_BY_PREFIX, (value,)).fetchall())


_touched: dict[str, float] = {}


async def authenticate(settings, key: str) -> str | None:
    """The user name of a valid, unrevoked key, else None. Records when the key was last used
    (at most once a minute per process: the lookup stays a read on the hot path)."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 128:
        return None
    digest = key_digest(key)

    async def lookup(conn):
        row = await (await conn.execute(AUTHENTICATE, (digest,))).fetchone()
        if row is None:
            return None
        key_id, user = str(row[0]), row[1]
        now = time.monotonic()
        if now - _touched.get(key_id, -TOUCH_INTERVAL) >= TOUCH_INTERVAL:
            _touched[key_id] = now
            await conn.execute(TOUCH, (key_id,))
        return user

    return await run_in_transaction(settings, lookup)
