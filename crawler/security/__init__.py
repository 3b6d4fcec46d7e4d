"""Encryption at rest, blind indexes and the key ring (see keyring.py)."""

from crawler.security.keyring import KeyRing, KeyRingError, keyring_from_settings

__all__ = ["KeyRing", "KeyRingError", "keyring_from_settings"]
