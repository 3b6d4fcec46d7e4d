"""Seeds of the heal tests (API, page), made through the real code: a quarantined version recorded by
crawler.healing.versions.record (``auto_accept`` above any confidence), and findings sealed by the encrypt
pipeline (api_client.write_listing) moved into ``held_findings`` under that version, as the crawl holds
the listings it read with a quarantined definition."""

from __future__ import annotations

import copy
import uuid

import psycopg

from crawler.extraction.definitions import DEFAULT_DIRECTORY, load_definition
from crawler.healing import versions

SITE = "fastpeople"
# a selector that is also markup: the page must show it as text in the diff, never build elements from it
PAYLOAD_SELECTOR = 'h2.age</pre><img src=x onerror="window.__xss=1">'


def site_yaml(site: str = SITE):
    return load_definition(DEFAULT_DIRECTORY / f"{site}.yaml")


async def quarantined(
    database_url: str,
    site: str = SITE,
    selector: str | None = None,
    base_sha256: str | None = None,
    parent: versions.Version | None = None,
) -> versions.Version:
    """A heuristic heal of the detail page's age field, quarantined; unique per call (its selector). It heals the
    YAML, or ``parent`` (a heal built on another one, as a crawl whose current version broke again makes)."""
    yaml = site_yaml(site)
    raw = copy.deepcopy(parent.definition if parent else yaml.raw)
    old = raw["detail"]["fields"]["age"]
    new = {"css": selector or f"h2.age-{uuid.uuid4().hex[:8]}::text", "filters": ["int"]}
    raw["detail"]["fields"]["age"] = new
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        return await versions.record(
            conn,
            site=site,
            definition=raw,
            parent_sha256=parent.sha256 if parent else yaml.sha256,
            base_sha256=base_sha256 or yaml.sha256,
            origin="heuristic",
            confidence=0.62,
            changes={"detail.age": {"old": old, "new": new, "score": 0.81, "margin": 0.22}},
            verified_on=[{"kind": "detail", "pages": 2, "structure": ["3f2a", "3f2a"]}],
            auto_accept=1.01,
        )


def hold(database_url: str, finding_ids: list[int], version: versions.Version) -> None:
    """Move these findings into held_findings under the version (what the crawl stores for it)."""
    columns = [c.strip() for c in versions.HELD_COLUMNS.split(",")]
    chosen = ", ".join("%s" if c == "definition_sha256" else c for c in columns)
    with psycopg.connect(database_url, autocommit=True) as conn, conn.transaction():
        conn.execute(
            f"INSERT INTO held_findings ({versions.HELD_COLUMNS}) SELECT {chosen} FROM findings WHERE id = ANY(%s)",
            (version.sha256, finding_ids),
        )
        conn.execute("DELETE FROM findings WHERE id = ANY(%s)", (finding_ids,))


def held_rows(database_url: str, version: versions.Version) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM held_findings WHERE website_id = %s AND definition_sha256 = %s",
            (version.site, version.sha256),
        ).fetchone()[0]


def findings_of(database_url: str, scan_id: str, site: str = SITE) -> int:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM findings WHERE scan_id = %s AND website_id = %s", (scan_id, site)
        ).fetchone()[0]
