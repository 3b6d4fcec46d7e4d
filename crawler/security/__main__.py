"""``python -m crawler.security rotate|genkey|screenshot``.

rotate      re-encrypt every row and screenshot still under an older key with the
            first key of CRAWLER_ENCRYPTION_KEYS (batches; safe to interrupt and rerun)
genkey      print a new random key entry (``id:base64``) to put first in CRAWLER_ENCRYPTION_KEYS
screenshot  decrypt one evidence screenshot (by its sha256, as findings.screenshot_sha256
            names it) to a PNG file: ``screenshot <sha256> -o shot.png``
"""

from __future__ import annotations

import argparse
import base64
import os
import sys

from crawler.cli import add_settings_option, project_settings
from crawler.config import ConfigError, validate
from crawler.db.embedded import database_url
from crawler.db.migrate import connect
from crawler.security.evidence import ScreenshotStore, screenshots_dir
from crawler.security.keyring import KEY_BYTES, KeyRingError, keyring_from_settings
from crawler.security.rotate import rotate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crawler.security", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["rotate", "genkey", "screenshot"])
    parser.add_argument("sha256", nargs="?", help="the screenshot to decrypt (screenshot)")
    parser.add_argument("-o", "--output", help="PNG file to write (screenshot)")
    parser.add_argument("--batch", type=int, default=500, help="rows per transaction (rotate)")
    parser.add_argument("--key-id", default="", help="id of the generated key (genkey; default k<timestamp>)")
    add_settings_option(parser)
    args = parser.parse_args(argv)
    if args.command == "genkey":
        key_id = args.key_id or f"k{int.from_bytes(os.urandom(3), 'big'):06x}"
        print(f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}")
        return 0
    if args.batch < 1:
        parser.error("--batch must be at least 1")
    if args.command == "screenshot" and not (args.sha256 and args.output):
        parser.error("screenshot needs <sha256> and -o <file.png>")
    settings = project_settings(parser, args.set)
    if args.command == "screenshot":
        return save_screenshot(settings, args.sha256, args.output)
    try:
        validate(settings)
        ring = keyring_from_settings(settings)
        with connect(database_url(settings), settings.getfloat("PG_CONNECT_TIMEOUT")) as conn:
            counts = rotate(conn, ring, ScreenshotStore(screenshots_dir(settings), ring), args.batch)
    except (ConfigError, KeyRingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = ", ".join(f"{table} {n}" for table, n in counts.items())
    print(f"re-encrypted under key {ring.current_key_id!r}: {summary}")
    return 0


def save_screenshot(settings, sha256: str, output: str) -> int:
    try:
        store = ScreenshotStore(screenshots_dir(settings), keyring_from_settings(settings))
        png = store.load(sha256.lower())
    except FileNotFoundError:
        print(f"error: screenshot {sha256}: no such file under {screenshots_dir(settings)}", file=sys.stderr)
        return 1
    except (ConfigError, KeyRingError) as exc:
        print(f"error: screenshot {sha256}: {exc}", file=sys.stderr)
        return 1
    with open(output, "wb") as out:
        out.write(png)
    print(f"wrote {output} ({len(png):,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
