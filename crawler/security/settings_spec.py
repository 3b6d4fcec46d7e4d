"""Settings of encryption at rest: the AES-256-GCM keys and the blind-index key."""

from __future__ import annotations

from crawler.setting import Component, Setting


def check_encryption_keys(value) -> None:
    if value:
        from crawler.security.keyring import KeyRingError, parse_encryption_keys

        try:
            parse_encryption_keys(value)
        except KeyRingError as exc:  # its messages never contain key material
            raise ValueError(str(exc)) from None


def check_blind_index_key(value) -> None:
    if value:
        from crawler.security.keyring import KeyRingError, parse_blind_index_key

        try:
            parse_blind_index_key(value)
        except KeyRingError as exc:
            raise ValueError(str(exc)) from None


KEYS = Component(
    "Encryption keys",
    "crawler/security/keyring.py",
    (
        Setting(
            "CRAWLER_ENCRYPTION_KEYS",
            "str",
            "",
            "`id:base64key,id:base64key`, 32-byte AES-256 keys; the first encrypts, all decrypt. Empty: keys "
            "generated once in `DATA_DIR/dev-keys.json` (mode 0600) with a warning; set real keys in production.",
            check=check_encryption_keys,
            shown_default="dev keys",
            accepts="`id:base64key,...`",
            secret=True,
        ),
        Setting(
            "CRAWLER_BLIND_INDEX_KEY",
            "str",
            "",
            "base64 32-byte HMAC-SHA256 key for blind indexes (equality lookups without decrypting)",
            check=check_blind_index_key,
            shown_default="dev key",
            accepts="base64, 32 bytes",
            secret=True,
        ),
    ),
)

COMPONENTS = (KEYS,)
