"""Screenshot files, encrypted and content-addressed under SCREENSHOTS_DIR.

A file is named by the sha256 of the clear PNG (``ab/abcdef....png.enc``), so
the same page captured twice is stored once; its content is an AES-256-GCM
envelope bound to that digest (associated data), decrypted only when served.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from crawler.security import context
from crawler.security.keyring import KeyRing

SCREENSHOT_COLUMNS = ("sha256", "path", "mime_type", "bytes", "key_id")


def screenshots_dir(settings) -> Path:
    return Path(settings.get("SCREENSHOTS_DIR") or Path(settings.get("DATA_DIR") or ".data") / "screenshots")


@dataclass(frozen=True)
class StoredScreenshot:
    sha256: str
    path: str  # relative to SCREENSHOTS_DIR
    size: int
    key_id: str

    def row(self) -> tuple:
        return (self.sha256, self.path, "image/png", self.size, self.key_id)


class ScreenshotStore:
    def __init__(self, root: Path, keyring: KeyRing):
        self.root = root
        self.keyring = keyring

    def relative_path(self, sha256: str) -> str:
        return f"{sha256[:2]}/{sha256}.png.enc"

    def save(self, png: bytes) -> StoredScreenshot:
        """Blocking file I/O: call it from a thread in async code."""
        sha256 = hashlib.sha256(png).hexdigest()
        relative = self.relative_path(sha256)
        path = self.root / relative
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(self.keyring.encrypt(png, context.screenshot(sha256)))
            os.replace(tmp, path)
        with path.open("rb") as sealed:  # the header names the key (an older one if stored before a rotation)
            key_id = KeyRing.key_id_of(sealed.read(80))
        return StoredScreenshot(sha256, relative, len(png), key_id)

    def load(self, sha256: str) -> bytes:
        sealed = (self.root / self.relative_path(sha256)).read_bytes()
        return self.keyring.decrypt(sealed, context.screenshot(sha256))

    def reencrypt(self, sha256: str) -> str:
        """Seal the file again under the ring's current key; returns that key id."""
        png = self.load(sha256)
        path = self.root / self.relative_path(sha256)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(self.keyring.encrypt(png, context.screenshot(sha256)))
        os.replace(tmp, path)
        return self.keyring.current_key_id
