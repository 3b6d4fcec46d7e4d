import base64
import json

import pytest
from scrapy.settings import Settings

from crawler.security.keyring import (
    KeyRing,
    KeyRingError,
    keyring_from_settings,
    parse_blind_index_key,
    parse_encryption_keys,
)

KEY_A = base64.b64encode(b"a" * 32).decode()
KEY_B = base64.b64encode(b"b" * 32).decode()
BLIND = base64.b64encode(b"i" * 32).decode()


def ring(text=f"new:{KEY_B},old:{KEY_A}"):
    return KeyRing(parse_encryption_keys(text), parse_blind_index_key(BLIND))


def test_round_trip_uses_first_key_and_fresh_nonces():
    keys = ring()
    first, second = keys.encrypt("jane@example.com", b"scan|1"), keys.encrypt("jane@example.com", b"scan|1")
    assert first != second  # a fresh nonce per value
    assert b"jane" not in first
    assert KeyRing.key_id_of(first) == "new"
    assert keys.decrypt_text(first, b"scan|1") == "jane@example.com"


def test_old_key_still_decrypts():
    old_only = ring(f"old:{KEY_A}")
    sealed = old_only.encrypt("value", b"ctx")
    assert ring().decrypt_text(sealed, b"ctx") == "value"


def test_tampered_ciphertext_is_rejected():
    keys = ring()
    sealed = bytearray(keys.encrypt("value", b"ctx"))
    sealed[-1] ^= 1
    with pytest.raises(KeyRingError, match="tampered"):
        keys.decrypt(bytes(sealed), b"ctx")


def test_wrong_associated_data_is_rejected():
    keys = ring()
    sealed = keys.encrypt("value", b"scan|1|email")
    with pytest.raises(KeyRingError, match="another row"):
        keys.decrypt(sealed, b"scan|2|email")


def test_unknown_key_and_garbage_envelopes():
    sealed = ring(f"gone:{KEY_A}").encrypt("value")
    with pytest.raises(KeyRingError, match="'gone', which is not in the ring"):
        ring().decrypt(sealed)
    with pytest.raises(KeyRingError, match="unknown version"):
        ring().decrypt(b"\x09abc")


def test_blind_index_is_normalised_and_keyed():
    keys = ring()
    assert keys.blind_index("  Jane   DOE ") == keys.blind_index("jane doe")
    assert keys.blind_index("jane doe") != keys.blind_index("john doe")
    other = KeyRing(parse_encryption_keys(f"k:{KEY_A}"), parse_blind_index_key(KEY_B))
    assert other.blind_index("jane doe") != keys.blind_index("jane doe")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no keys given"),
        ("nokey", "expected id:base64key"),
        ("k1:not*base64", "not valid base64"),
        (f"k1:{base64.b64encode(b'x' * 16).decode()}", "16 bytes, AES-256 needs 32"),
        (f"k1:{KEY_A},k1:{KEY_B}", "duplicate key id"),
        (f"bad id:{KEY_A}", "key id must be"),
    ],
)
def test_bad_key_text_is_explained_without_key_material(text, message):
    with pytest.raises(KeyRingError, match=message) as error:
        parse_encryption_keys(text)
    assert KEY_A not in str(error.value)


def test_development_keys_are_created_once(tmp_path):
    settings = Settings({"DATA_DIR": str(tmp_path)})
    sealed = keyring_from_settings(settings).encrypt("value")
    stored = json.loads((tmp_path / "dev-keys.json").read_text())
    assert (tmp_path / "dev-keys.json").stat().st_mode & 0o777 == 0o600
    assert keyring_from_settings(settings).decrypt_text(sealed) == "value"
    assert stored["encryption_keys"].startswith("dev1:")
