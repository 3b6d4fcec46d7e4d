"""AES-256-GCM envelope encryption with a key ring, and HMAC blind indexes.

Envelope layout (bytes): version(1) | len(key id)(1) | key id | nonce(12) | ciphertext+tag.
The key id travels with the ciphertext so any key of the ring can decrypt and
rotation can find what is still under an old key. The associated data (AAD)
binds a value to its row context (scan id + data type): a ciphertext copied to
another row fails to decrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import unicodedata
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

logger = logging.getLogger(__name__)

ENVELOPE_VERSION = 1
NONCE_BYTES = 12  # 96-bit nonce, fresh per value
KEY_BYTES = 32  # AES-256
DEV_KEYS_FILE = "dev-keys.json"


class KeyRingError(ValueError):
    """A key or ciphertext problem; the message never contains key material."""


def _decode_key(encoded: str, label: str) -> bytes:
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"{label}: not valid base64") from None
    if len(key) != KEY_BYTES:
        raise KeyRingError(f"{label}: key is {len(key)} bytes, AES-256 needs {KEY_BYTES}")
    return key


def parse_encryption_keys(text: str) -> list[tuple[str, bytes]]:
    """Parse ``"id:base64,id:base64"``; the first key encrypts, all decrypt."""
    keys: list[tuple[str, bytes]] = []
    for position, entry in enumerate(filter(None, (e.strip() for e in text.split(","))), 1):
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise KeyRingError(f"entry {position}: expected id:base64key")
        if len(key_id.encode()) > 64 or not key_id.replace("-", "").replace("_", "").isalnum():
            raise KeyRingError(f"entry {position}: key id must be 1-64 letters, digits, - or _")
        if any(existing == key_id for existing, _ in keys):
            raise KeyRingError(f"entry {position}: duplicate key id {key_id!r}")
        keys.append((key_id, _decode_key(encoded, f"entry {position} ({key_id!r})")))
    if not keys:
        raise KeyRingError("no keys given")
    return keys


def parse_blind_index_key(text: str) -> bytes:
    return _decode_key(text, "blind index key")


def normalise_for_index(value: str) -> str:
    """Canonical form compared by blind indexes: NFKC, case-folded, single spaces."""
    return " ".join(unicodedata.normalize("NFKC", value).casefold().split())


class KeyRing:
    def __init__(self, keys: list[tuple[str, bytes]], blind_index_key: bytes):
        if not keys:
            raise KeyRingError("no keys given")
        self._aead = {key_id: AESGCM(key) for key_id, key in keys}
        self.current_key_id = keys[0][0]
        self._blind_key = blind_index_key

    @property
    def key_ids(self) -> list[str]:
        return list(self._aead)

    def encrypt(self, plaintext: str | bytes, aad: bytes = b"") -> bytes:
        data = plaintext.encode() if isinstance(plaintext, str) else plaintext
        key_id = self.current_key_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.current_key_id].encrypt(nonce, data, aad)
        return bytes((ENVELOPE_VERSION, len(key_id))) + key_id + nonce + sealed

    @staticmethod
    def key_id_of(envelope: bytes) -> str:
        if len(envelope) < 2 or envelope[0] != ENVELOPE_VERSION:
            raise KeyRingError("not an encrypted envelope (unknown version)")
        return bytes(envelope[2 : 2 + envelope[1]]).decode()

    def decrypt(self, envelope: bytes, aad: bytes = b"") -> bytes:
        envelope = bytes(envelope)
        key_id = self.key_id_of(envelope)
        aead = self._aead.get(key_id)
        if aead is None:
            raise KeyRingError(f"ciphertext is under key {key_id!r}, which is not in the ring")
        start = 2 + envelope[1]
        nonce, sealed = envelope[start : start + NONCE_BYTES], envelope[start + NONCE_BYTES :]
        try:
            return aead.decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise KeyRingError("ciphertext rejected: tampered, or bound to another row") from None

    def decrypt_text(self, envelope: bytes, aad: bytes = b"") -> str:
        return self.decrypt(envelope, aad).decode()

    def keyed_digest(self, data: bytes) -> bytes:
        """HMAC-SHA256 of raw bytes under the blind-index key (e.g. request fingerprints in Redis)."""
        return hmac.new(self._blind_key, data, hashlib.sha256).digest()

    def blind_index(self, value: str) -> bytes:
        """HMAC-SHA256 of the normalised value: equality lookups without decrypting."""
        return hmac.new(self._blind_key, normalise_for_index(value).encode(), hashlib.sha256).digest()


def _dev_keys(data_dir: Path) -> dict[str, str]:
    """Development keys, created once under DATA_DIR so a first run needs no setup."""
    path = data_dir / DEV_KEYS_FILE
    if path.exists():
        return json.loads(path.read_text())
    data_dir.mkdir(parents=True, exist_ok=True)
    keys = {
        "encryption_keys": "dev1:" + base64.b64encode(os.urandom(KEY_BYTES)).decode(),
        "blind_index_key": base64.b64encode(os.urandom(KEY_BYTES)).decode(),
    }
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(keys, fh)
    os.replace(tmp, path)
    return keys


_warned_dev_keys = False


def keyring_from_settings(settings) -> KeyRing:
    """The key ring from CRAWLER_ENCRYPTION_KEYS / CRAWLER_BLIND_INDEX_KEY, or dev keys."""
    global _warned_dev_keys
    enc_text = settings.get("CRAWLER_ENCRYPTION_KEYS") or ""
    blind_text = settings.get("CRAWLER_BLIND_INDEX_KEY") or ""
    if not enc_text or not blind_text:
        dev = _dev_keys(Path(settings.get("DATA_DIR") or ".data"))
        if not _warned_dev_keys:
            logger.warning(
                "CRAWLER_ENCRYPTION_KEYS / CRAWLER_BLIND_INDEX_KEY unset: using development keys "
                "from DATA_DIR/%s; set both in production",
                DEV_KEYS_FILE,
            )
            _warned_dev_keys = True
        enc_text = enc_text or dev["encryption_keys"]
        blind_text = blind_text or dev["blind_index_key"]
    return KeyRing(parse_encryption_keys(enc_text), parse_blind_index_key(blind_text))
