"""Key rotation re-encrypts rows and screenshot files under the newest key, resumably."""

import base64
import subprocess
import sys
import uuid

from crawler.db.migrate import connect
from crawler.healing.versions import HELD_COLUMNS
from crawler.security import context
from crawler.security.evidence import ScreenshotStore
from crawler.security.keyring import KeyRing, parse_blind_index_key, parse_encryption_keys
from crawler.security.rotate import rotate
from support import ROOT

OLD = "old:" + base64.b64encode(b"o" * 32).decode()
NEW = "new:" + base64.b64encode(b"n" * 32).decode()
BLIND = base64.b64encode(b"i" * 32).decode()


def ring(keys):
    return KeyRing(parse_encryption_keys(keys), parse_blind_index_key(BLIND))


def seed(conn, keys, store):
    scan = str(uuid.uuid4())
    conn.execute("INSERT INTO websites (id, name, base_url) VALUES ('rot', 'r', 'http://r') ON CONFLICT DO NOTHING")
    conn.execute(
        "INSERT INTO scans (id, spider, target_ciphertext) VALUES (%s, 'rot', %s)",
        (scan, keys.encrypt('{"first_name": "Ann"}', context.scan_target(scan))),
    )
    stored = store.save(b"png-" + scan.encode())
    conn.execute(
        "INSERT INTO screenshots (sha256, path, bytes, key_id) VALUES (%s, %s, %s, %s)",
        (stored.sha256, stored.path, stored.size, stored.key_id),
    )
    for n in range(5):
        conn.execute(
            "INSERT INTO findings (scan_id, website_id, data_type, value_ciphertext, value_index, "
            "listing_url_ciphertext, listing_url_index, key_id, confidence) VALUES (%s,'rot','email',%s,%s,%s,%s,%s,1)",
            (
                scan,
                keys.encrypt(f"ann{n}@example.com", context.finding_value(scan, "email")),
                bytes([n]),
                keys.encrypt("http://r/ann", context.finding_listing_url(scan)),
                b"u",
                keys.current_key_id,
            ),
        )
    conn.execute(
        "INSERT INTO rejected_candidates (scan_id, website_id, listing_url_ciphertext, listing_url_index, key_id, "
        "confidence, threshold) VALUES (%s, 'rot', %s, 'u', %s, 0.2, 0.85)",
        (scan, keys.encrypt("http://r/someone-else", context.rejected_listing_url(scan)), keys.current_key_id),
    )
    conn.execute(
        "INSERT INTO dead_letters (kind, spider, reason, payload_ciphertext, key_id)"
        " VALUES ('record', 'rot', 'x', %s, %s)",
        (keys.encrypt("{}", context.dead_letter("record", "rot")), keys.current_key_id),
    )
    mailing = conn.execute(
        "INSERT INTO mailings (file_sha256, rows_total, header, address_column, encoding, subject, body_template)"
        " VALUES (%s, 2, false, 0, 'utf-8', 'S', 'B {token}') RETURNING id",
        (scan,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO mailing_rows (mailing_id, row_number, address_ciphertext, address_index, token_ciphertext,"
        " key_id, state) VALUES (%s, 1, %s, 'a', %s, %s, 'queued'), (%s, 2, NULL, NULL, NULL, NULL, 'invalid')",
        (
            mailing,
            keys.encrypt("ann@example.com", context.mailing_row(mailing, 1, "address")),
            keys.encrypt("tok-1", context.mailing_row(mailing, 1, "token")),
            keys.current_key_id,
            mailing,
        ),
    )
    return scan, stored.sha256


def test_rotation_reencrypts_everything_and_resumes(own_database_url, tmp_path):
    old, rotated = ring(OLD), ring(f"{NEW},{OLD}")
    with connect(own_database_url) as conn:
        scan, sha = seed(conn, old, ScreenshotStore(tmp_path, old))
        # a finding read under a quarantined heal waits in held_findings, sealed the same way
        conn.execute(
            f"INSERT INTO held_findings ({HELD_COLUMNS}) "
            f"SELECT {HELD_COLUMNS} FROM findings WHERE scan_id = %s LIMIT 1",
            (scan,),
        )
        first = rotate(conn, rotated, ScreenshotStore(tmp_path, rotated), batch=2)
        assert first["held_findings"] == 1
        assert (
            first["findings"] >= 5 and first["scans"] >= 1 and first["dead_letters"] >= 1 and first["screenshots"] >= 1
        )
        assert first["rejected_candidates"] >= 1 and first["mailing_rows"] >= 1
        assert rotate(conn, rotated, ScreenshotStore(tmp_path, rotated), batch=2) == {
            "findings": 0,
            "held_findings": 0,
            "rejected_candidates": 0,
            "mailing_rows": 0,
            "scans": 0,
            "dead_letters": 0,
            "screenshots": 0,
        }
        new_only = ring(NEW)
        values = conn.execute("SELECT value_ciphertext, key_id FROM findings WHERE scan_id = %s", (scan,)).fetchall()
        assert {new_only.decrypt_text(v["value_ciphertext"], context.finding_value(scan, "email")) for v in values} == {
            f"ann{n}@example.com" for n in range(5)
        }
        assert {v["key_id"] for v in values} == {"new"}
        target = conn.execute("SELECT target_ciphertext FROM scans WHERE id = %s", (scan,)).fetchone()[
            "target_ciphertext"
        ]
        assert new_only.decrypt_text(target, context.scan_target(scan)) == '{"first_name": "Ann"}'
        rejected = conn.execute("SELECT listing_url_ciphertext FROM rejected_candidates WHERE scan_id = %s", (scan,))
        assert new_only.decrypt_text(
            rejected.fetchone()["listing_url_ciphertext"], context.rejected_listing_url(scan)
        ) == ("http://r/someone-else")
        assert ScreenshotStore(tmp_path, new_only).load(sha) == b"png-" + scan.encode()
        row = conn.execute(
            "SELECT r.mailing_id, r.address_ciphertext, r.token_ciphertext, r.key_id FROM mailing_rows r"
            " JOIN mailings m ON m.id = r.mailing_id WHERE m.file_sha256 = %s AND r.row_number = 1",
            (scan,),
        ).fetchone()
        assert row["key_id"] == "new"
        address = new_only.decrypt_text(row["address_ciphertext"], context.mailing_row(row["mailing_id"], 1, "address"))
        token = new_only.decrypt_text(row["token_ciphertext"], context.mailing_row(row["mailing_id"], 1, "token"))
        assert (address, token) == ("ann@example.com", "tok-1")


def test_cli_generates_keys_and_reports_bad_ones(own_database_url):
    generated = subprocess.run(
        [sys.executable, "-m", "crawler.security", "genkey", "--key-id", "k9"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert generated.startswith("k9:") and len(base64.b64decode(generated[3:])) == 32
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "crawler.security",
            "rotate",
            "-s",
            f"DATABASE_URL={own_database_url}",
            "-s",
            "CRAWLER_ENCRYPTION_KEYS=k1:AAAA",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and bad.stderr.strip().startswith("error: CRAWLER_ENCRYPTION_KEYS:")
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "crawler.security",
            "rotate",
            "-s",
            f"DATABASE_URL={own_database_url}",
            "-s",
            f"CRAWLER_ENCRYPTION_KEYS={NEW},{OLD}",
            "-s",
            f"CRAWLER_BLIND_INDEX_KEY={BLIND}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0 and "re-encrypted under key 'new'" in ok.stdout
