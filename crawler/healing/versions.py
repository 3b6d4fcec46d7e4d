"""Versions of site definitions (``site_definition_versions``): every heal is one, with its provenance.

A version descends from a YAML (``base_sha256``: the file's sha256) through its parent. The current
version of a site for a YAML is the newest one that is active or quarantined: every worker that starts a
crawl with that YAML reads with it. Active: its confidence cleared ``HEAL_AUTO_ACCEPT``, or a person
accepted it. Quarantined: listings read under it wait in ``held_findings`` until a person accepts it (moved
into ``findings``) or rejects it (deleted, and the crawl goes back to the parent).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

import orjson
import yaml

ORIGINS = ("yaml", "heuristic", "llm", "human")
HELD_COLUMNS = (
    "scan_id, website_id, data_type, value_ciphertext, value_index, listing_url_ciphertext, listing_url_index, "
    "key_id, confidence, screenshot_sha256, status, found_at, updated_at, listing_group, evidence, definition_sha256"
)
# a version's held findings become findings (a replayed accept inserts nothing twice)
RELEASE_HELD = f"""
WITH moved AS (DELETE FROM held_findings WHERE website_id = %s AND definition_sha256 = %s RETURNING *)
INSERT INTO findings ({HELD_COLUMNS}) SELECT {HELD_COLUMNS} FROM moved ON CONFLICT DO NOTHING"""
COLUMNS = (
    "id, site, sha256, parent_sha256, base_sha256, origin, status, confidence, definition, changes, verified_on, "
    "created_at, decided_at, decided_by"
)


def definition_sha256(raw: dict) -> str:
    """The sha256 of a definition, as crawler.extraction.definitions computes it for a YAML."""
    return hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Version:
    id: int
    site: str
    sha256: str
    parent_sha256: str
    base_sha256: str
    origin: str
    status: str
    confidence: float
    definition: dict
    changes: dict
    verified_on: list
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None

    @property
    def quarantined(self) -> bool:
        return self.status == "quarantined"

    def summary(self) -> dict:
        return {
            "id": self.id,
            "site": self.site,
            "sha256": self.sha256[:12],
            "parent": self.parent_sha256[:12],
            "origin": self.origin,
            "status": self.status,
            "confidence": round(self.confidence, 3),
            "fields": sorted(self.changes),
            "pages": sum(v.get("pages", 0) for v in self.verified_on),
            "created_at": self.created_at.isoformat(timespec="seconds"),
        }


class VersionError(ValueError):
    """A version that does not exist or cannot take the asked transition; one line to show."""


async def _one(conn, sql: str, params) -> Version | None:
    row = await (await conn.execute(sql, params)).fetchone()
    return Version(*row) if row else None


async def current(conn, site: str, base_sha256: str) -> Version | None:
    """The version every crawl of this YAML reads with: the newest active or quarantined one."""
    return await _one(
        conn,
        f"""SELECT {COLUMNS} FROM site_definition_versions
            WHERE site = %s AND base_sha256 = %s AND status IN ('active', 'quarantined')
            ORDER BY created_at DESC, id DESC LIMIT 1""",
        [site, base_sha256],
    )


async def get(conn, version_id: int) -> Version:
    version = await _one(conn, f"SELECT {COLUMNS} FROM site_definition_versions WHERE id = %s", [version_id])
    if version is None:
        raise VersionError(f"version {version_id}: no such version")
    return version


async def listing(conn, site: str | None = None, status: str | None = None) -> list[Version]:
    rows = await (
        await conn.execute(
            f"""SELECT {COLUMNS} FROM site_definition_versions
                WHERE (%(site)s::text IS NULL OR site = %(site)s) AND (%(status)s::text IS NULL OR status = %(status)s)
                ORDER BY created_at DESC, id DESC""",
            {"site": site, "status": status},
        )
    ).fetchall()
    return [Version(*row) for row in rows]


async def record(
    conn,
    *,
    site: str,
    definition: dict,
    parent_sha256: str,
    base_sha256: str,
    origin: str,
    confidence: float,
    changes: dict,
    verified_on: list,
    auto_accept: float,
) -> Version | None:
    """Store a healed definition as a version: active when ``confidence >= auto_accept`` (and its parent is
    not quarantined), else quarantined. The same definition stored twice (two workers healing at once) is
    one version; None when a person rejected that definition before."""
    if origin not in ORIGINS:
        raise VersionError(f"origin {origin!r}: expected one of {', '.join(ORIGINS)}")
    status = "active" if confidence >= auto_accept else "quarantined"
    parent = await _one(
        conn, f"SELECT {COLUMNS} FROM site_definition_versions WHERE site = %s AND sha256 = %s", [site, parent_sha256]
    )
    if parent is not None and parent.status == "quarantined":
        status = "quarantined"  # it carries its parent's changes, which no one has reviewed yet
    sha = definition_sha256(definition)
    async with conn.transaction():
        await conn.execute(
            """INSERT INTO site_definition_versions
               (site, sha256, parent_sha256, base_sha256, origin, status, confidence, definition, changes, verified_on)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb)
               ON CONFLICT (site, sha256) DO NOTHING""",
            [
                site,
                sha,
                parent_sha256,
                base_sha256,
                origin,
                status,
                confidence,
                orjson.dumps(definition).decode(),
                orjson.dumps(changes).decode(),
                orjson.dumps(verified_on).decode(),
            ],
        )
        stored = await _one(
            conn, f"SELECT {COLUMNS} FROM site_definition_versions WHERE site = %s AND sha256 = %s", [site, sha]
        )
        if stored.status == "rejected":
            return None  # a person already said no to this very definition
        if stored.status == "active":
            await _supersede(conn, site, base_sha256, sha)
    return stored


async def _supersede(conn, site: str, base_sha256: str, keep_sha: str) -> None:
    await conn.execute(
        """UPDATE site_definition_versions SET status = 'superseded'
           WHERE site = %s AND base_sha256 = %s AND status = 'active' AND sha256 <> %s""",
        [site, base_sha256, keep_sha],
    )


async def accept(conn, version_id: int, by: str) -> tuple[Version, int]:
    """A person accepts a quarantined version, and with it the quarantined versions it builds on: they become
    active (the newest one current), their held findings become findings. Returns the version and how many
    findings were released."""
    version = await get(conn, version_id)
    if version.status not in ("quarantined", "rejected"):
        raise VersionError(
            f"version {version_id}: is {version.status}, only a quarantined or rejected one can be accepted"
        )
    chain = [version]
    while True:
        parent = await _one(
            conn,
            f"SELECT {COLUMNS} FROM site_definition_versions "
            "WHERE site = %s AND sha256 = %s AND status = 'quarantined'",
            [version.site, chain[-1].parent_sha256],
        )
        if parent is None or parent in chain:
            break
        chain.append(parent)
    released = 0
    async with conn.transaction():
        for one in chain:
            await conn.execute(
                "UPDATE site_definition_versions SET status = 'active', decided_at = now(), decided_by = %s "
                "WHERE id = %s",
                [by, one.id],
            )
            cursor = await conn.execute(
                RELEASE_HELD,
                [one.site, one.sha256],
            )
            released += cursor.rowcount
        await _supersede(conn, version.site, version.base_sha256, version.sha256)
    return await get(conn, version_id), released


async def reject(conn, version_id: int, by: str) -> tuple[Version, int]:
    """A person rejects a version: its held findings are deleted and crawls go back to its parent."""
    version = await get(conn, version_id)
    if version.status == "rejected":
        raise VersionError(f"version {version_id}: is already rejected")
    async with conn.transaction():
        await conn.execute(
            "UPDATE site_definition_versions SET status = 'rejected', decided_at = now(), decided_by = %s "
            "WHERE id = %s",
            [by, version_id],
        )
        cursor = await conn.execute(
            "DELETE FROM held_findings WHERE website_id = %s AND definition_sha256 = %s", [version.site, version.sha256]
        )
        deleted = cursor.rowcount
        # the parent takes over again if it was active before this one
        await conn.execute(
            """UPDATE site_definition_versions SET status = 'active'
               WHERE site = %s AND sha256 = %s AND status = 'superseded'""",
            [version.site, version.parent_sha256],
        )
    return await get(conn, version_id), deleted


def as_yaml(definition: dict) -> str:
    return yaml.safe_dump(definition, sort_keys=False, allow_unicode=True, width=120)


def diff(version: Version, base: dict) -> str:
    """A unified diff of the version against the YAML it descends from (both as YAML)."""
    return "".join(
        difflib.unified_diff(
            as_yaml(base).splitlines(keepends=True),
            as_yaml(version.definition).splitlines(keepends=True),
            f"spiders/sites/{version.site}.yaml",
            f"version {version.id} ({version.origin}, {version.status})",
        )
    )


def with_base_url(raw: dict, base_url: str) -> dict:
    raw = copy.deepcopy(raw)
    raw["base_url"] = base_url
    return raw
