"""A site redesigned under a running crawl: the crawl heals and finds what it found on v1 (crawler/healing).

First a crawl on v1 (the baseline; it also teaches the selector memory, kept in PostgreSQL). Then, for
each changed layout, a crawl of the same person during which the sandbox switches layout after a few
requests (``redesign_after_requests``): its findings must be the baseline's, and the heal a version
with its provenance.
"""

from __future__ import annotations

import json

import pytest
from broker_support import crawl, site_config, summary

from crawler.security.context import finding_listing_url, finding_value, rejected_listing_url
from sandbox.population import default_population
from support import crawl_keyring, http

SITE = "fastpeople"
LAYOUTS = ("structural", "jsonld", "partial", "v2")


TARGET = "P000004"  # John L. Smith, Chicago IL; searched in every state: 23 fastpeople records over 3 pages


def target():
    return default_population().get(TARGET)


def candidates(db, scan_id: str) -> set[tuple[str, str]]:
    """(listing URL, matching evidence) of every rejected candidate: what was read of the namesakes."""
    ring = crawl_keyring()
    rows = db.execute(
        "SELECT listing_url_ciphertext, evidence FROM rejected_candidates WHERE scan_id = %s", (scan_id,)
    ).fetchall()
    return {(ring.decrypt_text(url, rejected_listing_url(scan_id)), json.dumps(ev, sort_keys=True)) for url, ev in rows}


def findings(db, scan_id: str) -> set[tuple[str, str, str]]:
    """(listing URL, data type, value) of every finding of the scan, decrypted."""
    ring = crawl_keyring()
    rows = db.execute(
        "SELECT listing_url_ciphertext, data_type, value_ciphertext FROM findings WHERE scan_id = %s", (scan_id,)
    ).fetchall()
    return {
        (
            ring.decrypt_text(url, finding_listing_url(scan_id)),
            kind,
            ring.decrypt_text(value, finding_value(scan_id, kind)),
        )
        for url, kind, value in rows
    }


def forget_heals(db) -> None:
    """No version, and the selector memory as v1 left it."""
    db.execute("DELETE FROM site_definition_versions WHERE site = %s", (SITE,))
    db.execute("TRUNCATE heal_memory; INSERT INTO heal_memory SELECT * FROM heal_memory_v1")


@pytest.fixture(scope="module")
def baseline(sandbox, database_url, tmp_path_factory):
    import os

    import psycopg

    import support

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "LOG_FILE", "LOG_FORMAT")}
    env.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path_factory.mktemp("healing") / "data"),
        CRAWLER_ENCRYPTION_KEYS=support.ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=support.BLIND_INDEX_KEY,
        SITES_MAX_CANDIDATES="10",
    )
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("DELETE FROM site_definition_versions WHERE site = %s", (SITE,))
        scan_id, result = crawl(SITE, target(), env, sandbox, "-a", "state=")
        assert result.returncode == 0, result.stderr[-3000:]
        found, rejected = findings(db, scan_id), candidates(db, scan_id)
        healed = db.execute("SELECT count(*) FROM site_definition_versions WHERE site = %s", (SITE,)).fetchone()[0]
        # what v1 taught: each redesign below starts from it (not from the previous test's redesign)
        db.execute("CREATE TABLE IF NOT EXISTS heal_memory_v1 AS SELECT * FROM heal_memory WITH NO DATA")
        db.execute("TRUNCATE heal_memory_v1; INSERT INTO heal_memory_v1 SELECT * FROM heal_memory")
    assert len({url for url, _, _ in found}) == 1 and len(rejected) == 9, summary(result.stderr, SITE)
    assert healed == 0 and "held_pages" not in result.stderr, "v1 pages triggered a heal"
    yield env, found, rejected
    # later tests of this worker crawl fastpeople on v1: no heal of a redesign, no memory of one
    with psycopg.connect(database_url, autocommit=True) as db:
        db.execute("DELETE FROM site_definition_versions WHERE site = %s", (SITE,))
        db.execute("DELETE FROM held_findings WHERE website_id = %s", (SITE,))
        db.execute("TRUNCATE heal_memory; DROP TABLE IF EXISTS heal_memory_v1")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_crawl_heals_a_redesign_mid_crawl_and_finds_the_same(layout, baseline, sandbox, db):
    env, expected, rejected = baseline
    forget_heals(db)
    # page 1 of the results and 3 detail pages on v1, the rest on the new layout (counted from 0)
    assert http(f"{sandbox[SITE]}/_sandbox/config", data={"reset": True}).status == 200
    with site_config(sandbox[SITE], layout="v1", redesign_layout=layout, redesign_after_requests=4):
        scan_id, result = crawl(SITE, target(), env, sandbox, "-a", "state=")
    assert result.returncode == 0, result.stderr[-3000:]
    assert findings(db, scan_id) == expected, summary(result.stderr, SITE)
    assert candidates(db, scan_id) == rejected, summary(result.stderr, SITE)
    versions = db.execute(
        "SELECT origin, status, confidence, verified_on, changes FROM site_definition_versions WHERE site = %s "
        "ORDER BY id",
        (SITE,),
    ).fetchall()
    assert versions, "no heal was recorded"
    origin, status, confidence, verified_on, changes = versions[0]
    assert origin == "heuristic" and status == "active" and confidence >= 0.75
    assert verified_on[0]["kind"] == "detail" and verified_on[0]["pages"] >= 3
    assert all(key.startswith("detail.") for key in changes)
    used = db.execute("SELECT definitions FROM scans WHERE id = %s", (scan_id,)).fetchone()[0]
    assert (
        used and used[SITE] != db.execute("SELECT definition_sha256 FROM websites WHERE id = %s", (SITE,)).fetchone()[0]
    )
    assert " parse_error " not in result.stderr, summary(result.stderr, SITE)


def test_quarantine_holds_the_listings_until_a_person_accepts(baseline, sandbox, db):
    """A heal that cannot be verified on HEAL_MIN_PAGES pages is quarantined: the listings read with it
    wait in held_findings, and become the findings of v1 once a person accepts the version."""
    import asyncio

    import psycopg

    from crawler.healing import versions

    env, expected, _ = baseline
    forget_heals(db)
    assert http(f"{sandbox[SITE]}/_sandbox/config", data={"reset": True}).status == 200
    with site_config(sandbox[SITE], layout="v1", redesign_layout="structural", redesign_after_requests=4):
        scan_id, result = crawl(SITE, target(), dict(env, HEAL_MIN_PAGES="20"), sandbox, "-a", "state=")
    assert result.returncode == 0, result.stderr[-3000:]
    assert findings(db, scan_id) == set(), "a quarantined heal's listing became a finding"
    held = db.execute("SELECT count(*) FROM held_findings WHERE scan_id = %s", (scan_id,)).fetchone()[0]
    assert held == len(expected)
    statuses = db.execute("SELECT status FROM site_definition_versions WHERE site = %s", (SITE,)).fetchall()
    assert statuses and {s for (s,) in statuses} == {"quarantined"}
    version_id = db.execute(  # the newest: the one crawls read with, built on any earlier quarantined one
        "SELECT id FROM site_definition_versions WHERE site = %s ORDER BY id DESC LIMIT 1", (SITE,)
    ).fetchone()[0]

    async def accept():
        async with await psycopg.AsyncConnection.connect(env["DATABASE_URL"], autocommit=True) as conn:
            return await versions.accept(conn, version_id, "test")

    version, released = asyncio.run(accept())
    assert version.status == "active" and released == len(expected)
    assert findings(db, scan_id) == expected
