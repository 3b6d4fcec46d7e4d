"""crawler.store.stats with finished scans' summaries: finish_scan and end_unfinished write a scan's
findings counts on its row, a retry clears them, and stats from summaries plus live counts of the
other scans agree with counting every finding."""

import uuid

import psycopg
import pytest

from crawler.db.pool import close_pools
from crawler.spider_args import PersonQuery
from crawler.store import jobs, stats
from crawler.store import scans as store
from support import store_settings

pytestmark = pytest.mark.integration

SITES = ["fastpeople", "radaris"]
QUERY = PersonQuery("Zebulon", "Quixley", state="IL")

# every finding of the owner's scans, counted directly (what stats must agree with)
LIVE = """
SELECT f.website_id, f.data_type, count(*), count(DISTINCT (f.scan_id, f.listing_url_index))
FROM findings f JOIN scans s ON s.id = f.scan_id WHERE s.owner = %s GROUP BY f.website_id, f.data_type"""


@pytest.fixture
async def settings(database_url, tmp_path):
    settings = store_settings(database_url, tmp_path)
    yield settings
    await close_pools()


@pytest.fixture
def owner():
    return f"stats-{uuid.uuid4().hex[:8]}"


def add_listing(db, scan_id: str, site: str, data_types=("name", "phone", "email")) -> None:
    """One listing's findings (opaque bytes stand in for ciphertexts: nothing here decrypts)."""
    url_index = uuid.uuid4().bytes
    for data_type in data_types:
        db.execute(
            "INSERT INTO findings (scan_id, website_id, data_type, value_ciphertext, value_index, "
            "listing_url_ciphertext, listing_url_index, key_id, confidence) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, 'k1', 0.9)",
            (scan_id, site, data_type, b"ct", uuid.uuid4().bytes, b"url", url_index),
        )


async def new_scan(settings, db, owner: str, start: bool = True) -> str:
    scan_id = await store.create_scan(settings, QUERY, "scan", SITES)
    db.execute("UPDATE scans SET owner = %s WHERE id = %s", (owner, scan_id))
    if start:
        await store.start_scan(settings, scan_id, "scan", QUERY, SITES)
    return scan_id


def summary_of(db, scan_id: str):
    return db.execute("SELECT findings_summary FROM scans WHERE id = %s", (scan_id,)).fetchone()[0]


@pytest.fixture
def db(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        for site in SITES:
            conn.execute(
                "INSERT INTO websites (id, name, base_url) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (site, site, f"http://127.0.0.1/{site}"),
            )
        yield conn


async def test_finish_scan_writes_the_findings_summary_and_a_retry_clears_it(settings, db, owner):
    scan_id = await new_scan(settings, db, owner)
    add_listing(db, scan_id, "fastpeople")
    add_listing(db, scan_id, "fastpeople", ("name", "address"))
    add_listing(db, scan_id, "radaris", ("name", "age"))
    assert summary_of(db, scan_id) is None  # running: not summarised
    await store.finish_scan(settings, scan_id, "completed", None, {})
    assert summary_of(db, scan_id) == {
        "fastpeople": {"name": 2, "phone": 1, "email": 1, "address": 1},
        "radaris": {"name": 1, "age": 1},
    }
    # a retry runs it again: the summary is gone until the scan finishes again, with what it found since
    await store.start_scan(settings, scan_id, "scan", QUERY, SITES)
    assert summary_of(db, scan_id) is None
    add_listing(db, scan_id, "radaris", ("name",))
    await store.finish_scan(settings, scan_id, "failed", "every site failed", {})
    assert summary_of(db, scan_id)["radaris"] == {"name": 2, "age": 1}
    # a scan that found nothing is summarised too (zero, not unknown)
    empty = await new_scan(settings, db, owner)
    await store.finish_scan(settings, empty, "cancelled", "shutdown", {})
    assert summary_of(db, empty) == {}


async def test_end_unfinished_summarises_a_final_status_only(settings, db, owner):
    failed, handed_back = await new_scan(settings, db, owner), await new_scan(settings, db, owner)
    add_listing(db, failed, "radaris")
    add_listing(db, handed_back, "radaris")
    assert await jobs.end_unfinished(settings, failed, "failed", "crawl exited 1")
    assert await jobs.end_unfinished(settings, handed_back, "pending", "worker shut down")
    assert summary_of(db, failed) == {"radaris": {"name": 1, "phone": 1, "email": 1}}
    assert summary_of(db, handed_back) is None
    # already finished by its crawl: left as it is
    add_listing(db, failed, "radaris")
    assert not await jobs.end_unfinished(settings, failed, "cancelled", None)
    assert summary_of(db, failed) == {"radaris": {"name": 1, "phone": 1, "email": 1}}


async def test_stats_from_summaries_and_live_counts_agree_with_counting_every_finding(settings, db, owner):
    completed = await new_scan(settings, db, owner)
    for site in ("fastpeople", "fastpeople", "radaris"):
        add_listing(db, completed, site)
    await store.finish_scan(settings, completed, "completed", None, {})
    running = await new_scan(settings, db, owner)
    add_listing(db, running, "radaris", ("name", "address"))
    failed = await new_scan(settings, db, owner)
    add_listing(db, failed, "fastpeople", ("name", "age"))
    await jobs.end_unfinished(settings, failed, "failed", "crawl exited 1")
    legacy = await new_scan(settings, db, owner)  # finished before summaries existed: no summary
    add_listing(db, legacy, "radaris")
    db.execute("UPDATE scans SET status = 'completed', finished_at = now() WHERE id = %s", (legacy,))
    pending = await new_scan(settings, db, owner, start=False)
    other = await new_scan(settings, db, f"{owner}-other")
    add_listing(db, other, "fastpeople")
    await store.finish_scan(settings, other, "completed", None, {})
    assert summary_of(db, legacy) is None and summary_of(db, running) is None

    result = await stats.stats(settings, owner)

    by_type, by_site, listings = {}, {}, {}
    for site, data_type, n, distinct_listings in db.execute(LIVE, (owner,)).fetchall():
        by_type[data_type] = by_type.get(data_type, 0) + n
        by_site[site] = by_site.get(site, 0) + n
        if data_type == "name":
            listings[site] = distinct_listings
    assert result.findings_by_type == by_type and result.findings_by_site == by_site
    assert result.listings_by_site == listings == {"fastpeople": 3, "radaris": 3}
    assert result.listings_per_scan == {completed: 3, running: 1, failed: 1, legacy: 1}
    assert result.scans_by_status == {"completed": 2, "running": 1, "failed": 1, "pending": 1}
    assert pending not in result.listings_per_scan

    # a finished scan's counts come from its row, not from its findings
    db.execute(
        "UPDATE scans SET findings_summary = %s WHERE id = %s", ('{"radaris": {"name": 5, "phone": 5}}', completed)
    )
    recounted = await stats.stats(settings, owner)
    assert recounted.listings_per_scan[completed] == 5
    # radaris: the row's 5 + 5, the running scan's 2 and the legacy scan's 3 counted live
    assert recounted.findings_by_site == {"radaris": 10 + 2 + 3, "fastpeople": 2}


async def test_findings_written_after_the_end_are_summarised_again(settings, db, owner):
    """A replayed dead letter may add findings to a finished scan (spiders/replay_dead_letters.py)."""
    finished, running = await new_scan(settings, db, owner), await new_scan(settings, db, owner)
    add_listing(db, finished, "radaris", ("name",))
    await store.finish_scan(settings, finished, "completed", None, {})
    add_listing(db, finished, "radaris", ("name", "phone"))
    add_listing(db, running, "radaris", ("name",))
    await stats.resummarise(settings, [finished, running, str(uuid.uuid4())])
    assert summary_of(db, finished) == {"radaris": {"name": 2, "phone": 1}}
    assert summary_of(db, running) is None  # still running: counted live, not summarised
