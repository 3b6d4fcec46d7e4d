"""Definition versions (crawler/healing/versions.py) on the real database: active or quarantined by
``auto_accept``, the current version of a YAML, listing, accept (held findings become findings) and reject
(held findings deleted, the parent active again), and the transitions that are refused."""

from __future__ import annotations

import copy
import os
import uuid

import psycopg
import pytest

from crawler.healing import versions

pytestmark = pytest.mark.integration

# keys in jsonb's order (shorter first), so a stored version reads back in the same order as this
BASE = {
    "id": "site",
    "name": "A site",
    "detail": {"fields": {"age": {"css": "span.age::text", "filters": ["int"]}, "full_name": {"css": "h1::text"}}},
    "base_url": "http://127.0.0.1:1",
}


def healed(site: str, age_selector: str) -> dict:
    raw = copy.deepcopy(BASE)
    raw["id"] = site
    raw["detail"]["fields"]["age"] = {"css": age_selector, "filters": ["int"]}
    return raw


@pytest.fixture
async def conn(database_url):
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as connection:
        yield connection


@pytest.fixture
def site(db):
    """A site of this test's own (versions are per site), with its websites row for findings."""
    name = f"vsite_{uuid.uuid4().hex[:8]}"
    db.execute("INSERT INTO websites (id, name, base_url) VALUES (%s, %s, %s)", (name, name, "http://127.0.0.1:1"))
    return name


async def record(conn, site: str, selector: str, confidence: float, parent: str = "p0", base: str = "b0"):
    return await versions.record(
        conn,
        site=site,
        definition=healed(site, selector),
        parent_sha256=parent,
        base_sha256=base,
        origin="heuristic",
        confidence=confidence,
        changes={"detail.fields.age": {"old": BASE["detail"]["fields"]["age"], "new": {"css": selector}}},
        verified_on=[{"kind": "detail", "pages": 3}],
        auto_accept=0.75,
    )


def hold(db, site: str, version: versions.Version, count: int) -> str:
    """``count`` held findings of a new scan under the version (random ciphertexts: nothing is decrypted)."""
    scan_id = db.execute("INSERT INTO scans (spider) VALUES ('scan') RETURNING id").fetchone()[0]
    for _ in range(count):
        db.execute(
            """INSERT INTO held_findings (scan_id, website_id, data_type, value_ciphertext, value_index,
               listing_url_ciphertext, listing_url_index, key_id, confidence, definition_sha256)
               VALUES (%s, %s, 'phone', %s, %s, %s, %s, 'test1', 0.9, %s)""",
            (scan_id, site, os.urandom(24), os.urandom(32), os.urandom(24), os.urandom(32), version.sha256),
        )
    return str(scan_id)


def counts(db, site: str, scan_id: str) -> tuple[int, int]:
    held = db.execute("SELECT count(*) FROM held_findings WHERE scan_id = %s", (scan_id,)).fetchone()[0]
    found = db.execute(
        "SELECT count(*) FROM findings WHERE scan_id = %s AND website_id = %s", (scan_id, site)
    ).fetchone()[0]
    return held, found


async def test_record_is_active_or_quarantined_by_confidence_and_current_is_the_newest(conn, site):
    quarantined = await record(conn, site, "b.age::text", 0.6)
    assert quarantined.status == "quarantined" and quarantined.quarantined
    assert quarantined.sha256 == versions.definition_sha256(healed(site, "b.age::text"))
    assert (await versions.current(conn, site, "b0")).id == quarantined.id
    active = await record(conn, site, "i.age::text", 0.9)
    assert active.status == "active"
    assert (await versions.current(conn, site, "b0")).id == active.id
    assert await versions.current(conn, site, "another yaml") is None
    # the same definition stored twice (two workers healing at once) is one version
    assert (await record(conn, site, "i.age::text", 0.95)).id == active.id
    summary = active.summary()
    assert summary["fields"] == ["detail.fields.age"] and summary["pages"] == 3 and summary["origin"] == "heuristic"


async def test_a_newer_active_version_supersedes_the_older(conn, site):
    first = await record(conn, site, "b.age::text", 0.9)
    second = await record(conn, site, "i.age::text", 0.9, parent=first.sha256)
    assert (await versions.get(conn, first.id)).status == "superseded"
    assert (await versions.get(conn, second.id)).status == "active"
    listed = await versions.listing(conn, site=site)
    assert [v.id for v in listed] == [second.id, first.id]
    assert [v.id for v in await versions.listing(conn, site=site, status="superseded")] == [first.id]


async def test_accept_releases_held_findings_into_findings(conn, db, site):
    parent = await record(conn, site, "b.age::text", 0.9)
    version = await record(conn, site, "i.age::text", 0.5, parent=parent.sha256)
    scan_id = hold(db, site, version, 3)
    assert counts(db, site, scan_id) == (3, 0)
    accepted, released = await versions.accept(conn, version.id, "tester")
    assert released == 3 and counts(db, site, scan_id) == (0, 3)
    assert accepted.status == "active" and accepted.decided_by == "tester" and accepted.decided_at is not None
    assert (await versions.get(conn, parent.id)).status == "superseded"
    with pytest.raises(versions.VersionError, match="is active"):
        await versions.accept(conn, version.id, "tester")


async def test_reject_deletes_held_findings_and_the_parent_takes_over(conn, db, site):
    parent = await record(conn, site, "b.age::text", 0.9)
    version = await record(conn, site, "i.age::text", 0.9, parent=parent.sha256)
    assert (await versions.get(conn, parent.id)).status == "superseded"
    scan_id = hold(db, site, version, 2)
    rejected, deleted = await versions.reject(conn, version.id, "tester")
    assert deleted == 2 and counts(db, site, scan_id) == (0, 0)
    assert rejected.status == "rejected" and rejected.decided_by == "tester"
    assert (await versions.get(conn, parent.id)).status == "active"
    assert (await versions.current(conn, site, "b0")).id == parent.id
    with pytest.raises(versions.VersionError, match="already rejected"):
        await versions.reject(conn, version.id, "tester")
    # a rejected version may still be accepted by a person who changed their mind
    accepted, released = await versions.accept(conn, version.id, "tester")
    assert accepted.status == "active" and released == 0


async def test_unknown_versions_and_origins_are_one_line_errors(conn, site):
    with pytest.raises(versions.VersionError, match=r"^version 987654321: no such version$"):
        await versions.get(conn, 987654321)
    with pytest.raises(versions.VersionError, match="origin 'robot'"):
        await versions.record(
            conn,
            site=site,
            definition=healed(site, "x"),
            parent_sha256="p",
            base_sha256="b",
            origin="robot",
            confidence=1.0,
            changes={},
            verified_on=[],
            auto_accept=0.75,
        )


async def test_diff_shows_the_changed_field_against_the_yaml(conn, site):
    version = await record(conn, site, "i.age::text", 0.9)
    base = copy.deepcopy(BASE)
    base["id"] = site
    text = versions.diff(version, base)
    assert f"--- spiders/sites/{site}.yaml" in text and f"+++ version {version.id} (heuristic, active)" in text
    assert "-      css: span.age::text" in text and "+      css: i.age::text" in text
    assert "full_name" not in "".join(
        line for line in text.splitlines() if line[:1] in "+-" and line[:3] not in "+++---"
    )
