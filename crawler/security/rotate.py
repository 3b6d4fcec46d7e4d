"""Re-encrypt everything still under an older key with the ring's current key.

Works in batches of rows, each batch its own transaction (rows locked with
SKIP LOCKED, so it can run beside crawls and beside another rotation), and
selects only what is not under the current key yet: interrupted, it resumes
where it stopped by simply running again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from crawler.security import context
from crawler.security.evidence import ScreenshotStore
from crawler.security.keyring import KeyRing

logger = logging.getLogger(__name__)

# key id of an envelope, in SQL: bytes 3 .. 2 + length byte (see keyring.py)
ENVELOPE_KEY_ID = "convert_from(substring({col} from 3 for get_byte({col}, 1)), 'UTF8')"


@dataclass(frozen=True)
class SealedColumns:
    """One table's ciphertext columns and how to rebuild each one's AAD from its row."""

    table: str
    key: str  # primary key column
    context_columns: tuple[str, ...]  # selected to rebuild the AAD
    sealed: dict[str, Callable[[dict], bytes]]  # ciphertext column -> AAD from row
    key_id_column: str | None  # None: read the key id from the first ciphertext envelope


TABLES = (
    *(
        SealedColumns(
            table,
            "id",
            ("scan_id", "data_type"),
            {
                "value_ciphertext": lambda r: context.finding_value(str(r["scan_id"]), r["data_type"]),
                "listing_url_ciphertext": lambda r: context.finding_listing_url(str(r["scan_id"])),
            },
            "key_id",
        )
        # held findings (read under a quarantined heal) are sealed like findings, and rotate with them
        for table in ("findings", "held_findings")
    ),
    SealedColumns(
        "rejected_candidates",
        "id",
        ("scan_id",),
        {
            "listing_url_ciphertext": lambda r: context.rejected_listing_url(str(r["scan_id"])),
            "review_ciphertext": lambda r: context.rejected_review(str(r["scan_id"])),
        },
        "key_id",
    ),
    SealedColumns(
        "mailing_rows",
        "id",
        ("mailing_id", "row_number"),
        {
            "address_ciphertext": lambda r: context.mailing_row(r["mailing_id"], r["row_number"], "address"),
            "token_ciphertext": lambda r: context.mailing_row(r["mailing_id"], r["row_number"], "token"),
        },
        "key_id",
    ),
    SealedColumns("scans", "id", (), {"target_ciphertext": lambda r: context.scan_target(str(r["id"]))}, None),
    SealedColumns(
        "dead_letters",
        "id",
        ("kind", "spider"),
        {"payload_ciphertext": lambda r: context.dead_letter(r["kind"], r["spider"])},
        "key_id",
    ),
)


def _stale_condition(spec: SealedColumns) -> str:
    first = next(iter(spec.sealed))
    key_id = spec.key_id_column or ENVELOPE_KEY_ID.format(col=first)
    return f"{first} IS NOT NULL AND {key_id} <> %(current)s"


def rotate_table(conn: psycopg.Connection, ring: KeyRing, spec: SealedColumns, batch: int) -> int:
    columns = ", ".join(dict.fromkeys((spec.key, *spec.context_columns, *spec.sealed)))
    assignments = ", ".join(f"{col} = %({col})s" for col in spec.sealed)
    if spec.key_id_column:
        assignments += f", {spec.key_id_column} = %(current)s"
    done = 0
    while True:
        with conn.transaction():
            rows = conn.execute(
                f"SELECT {columns} FROM {spec.table} WHERE {_stale_condition(spec)} "  # fixed names
                f"ORDER BY {spec.key} LIMIT %(batch)s FOR UPDATE SKIP LOCKED",
                {"current": ring.current_key_id, "batch": batch},
            ).fetchall()
            for row in rows:
                values = {"current": ring.current_key_id, "pk": row[spec.key]}
                for col, aad in spec.sealed.items():
                    sealed = row[col]
                    values[col] = None if sealed is None else ring.encrypt(ring.decrypt(sealed, aad(row)), aad(row))
                conn.execute(f"UPDATE {spec.table} SET {assignments} WHERE {spec.key} = %(pk)s", values)
        done += len(rows)
        if rows:
            logger.info("rotated %d %s row(s) so far", done, spec.table)
        if len(rows) < batch:
            return done


def rotate_screenshots(conn: psycopg.Connection, store: ScreenshotStore, batch: int) -> int:
    done = 0
    while True:
        with conn.transaction():
            shas = [
                r["sha256"]
                for r in conn.execute(
                    "SELECT sha256 FROM screenshots WHERE key_id <> %s ORDER BY sha256 LIMIT %s FOR UPDATE SKIP LOCKED",
                    (store.keyring.current_key_id, batch),
                )
            ]
            for sha256 in shas:
                key_id = store.reencrypt(sha256)
                conn.execute("UPDATE screenshots SET key_id = %s WHERE sha256 = %s", (key_id, sha256))
        done += len(shas)
        if len(shas) < batch:
            return done


def rotate(conn: psycopg.Connection, ring: KeyRing, store: ScreenshotStore, batch: int = 500) -> dict[str, int]:
    """Re-encrypt every stale ciphertext; returns rows (or files) rotated per table."""
    conn.row_factory = psycopg.rows.dict_row
    counts = {spec.table: rotate_table(conn, ring, spec, batch) for spec in TABLES}
    counts["screenshots"] = rotate_screenshots(conn, store, batch)
    return counts
