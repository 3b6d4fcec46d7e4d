"""The review band through the project's real pipeline chain against PostgreSQL: a candidate scoring
MATCH_REVIEW_THRESHOLD <= confidence < MATCH_THRESHOLD keeps its extracted listing sealed for "is
this you?"; below the band, or once the owner said no, nothing is kept; once they said yes, later
scans accept the listing."""

import uuid

import pytest

from crawler.db.pool import close_pools
from crawler.scans import ScanContext
from crawler.security import context
from crawler.store import reviews
from sandbox.population import default_population
from support import crawl_keyring
from tools.evaluate_matching import site_listing, target_query

pytestmark = pytest.mark.integration

SITE = "thatsthem"


@pytest.fixture
def people():
    """The target, and a listing of theirs whose age is off by two years (confidence ~0.08: in a band
    from 0.05, below one from 0.5)."""
    population = default_population()
    target = next(p for p in population.people if (p.first_name, p.last_name) == ("John", "Smith"))
    return population, target, target.age + 2


@pytest.fixture
def owner():
    return f"band-{uuid.uuid4().hex[:8]}"


def new_scan(db, owner) -> str:
    scan_id = str(uuid.uuid4())
    db.execute("INSERT INTO scans (id, spider, owner) VALUES (%s, 'pipeline-test', %s)", (scan_id, owner))
    db.execute(
        "INSERT INTO websites (id, name, base_url) VALUES (%s, %s, 'http://x') ON CONFLICT DO NOTHING", (SITE, SITE)
    )
    return scan_id


async def run(make_chain, db, owner, people, threshold: float, band: float, url: str):
    """One scan of the target whose only candidate is the doubtful listing at ``url``."""
    population, target, age = people
    scan_id = new_scan(db, owner)
    item = site_listing(SITE, target, population)
    item.scan_id, item.listing_url, item.age = scan_id, url, age
    chain = make_chain(MATCH_THRESHOLD=threshold, MATCH_REVIEW_THRESHOLD=band)
    chain.crawler.spider.scan = ScanContext(scan_id, target_query(target))
    async with chain:
        await chain.push(item)
    return scan_id, chain.crawler


def candidate(db, scan_id):
    return db.execute(
        "SELECT id, confidence, review_ciphertext FROM rejected_candidates WHERE scan_id = %s", (scan_id,)
    ).fetchall()


def finding_count(db, scan_id) -> int:
    return db.execute("SELECT count(*) FROM findings WHERE scan_id = %s", (scan_id,)).fetchone()[0]


async def test_a_band_candidate_keeps_its_listing_sealed_for_review(make_chain, db, owner, people):
    _, target, age = people
    url = f"http://127.0.0.1:9/person/{uuid.uuid4().hex[:8]}"
    scan_id, crawler = await run(make_chain, db, owner, people, 0.999, 0.05, url)
    [(candidate_id, confidence, sealed)] = candidate(db, scan_id)
    assert 0.05 <= confidence < 0.5 and sealed is not None
    assert crawler.stats.get_value("match/review") == 1 and finding_count(db, scan_id) == 0
    sealed = bytes(sealed)
    assert target.last_name.encode() not in sealed and url.encode() not in sealed
    assert target.last_name.encode() in crawl_keyring().decrypt(sealed, context.rejected_review(scan_id))
    # the person sees it, decrypted for them only
    [review] = await reviews.list_reviews(crawler.settings, owner)
    assert review.id == candidate_id and review.listing.listing_url == url
    assert "Smith" in review.listing.full_name and review.listing.age == age
    assert await reviews.list_reviews(crawler.settings, "someone-else") == []
    await close_pools()


async def test_below_the_band_nothing_is_kept(make_chain, db, owner, people):
    url = f"http://127.0.0.1:9/person/{uuid.uuid4().hex[:8]}"
    scan_id, crawler = await run(make_chain, db, owner, people, 0.999, 0.5, url)
    [(_, confidence, sealed)] = candidate(db, scan_id)
    assert confidence < 0.5 and sealed is None and crawler.stats.get_value("match/review") is None


async def test_after_no_the_listing_is_never_kept_again_and_after_yes_it_is_accepted(make_chain, db, owner, people):
    url = f"http://127.0.0.1:9/person/{uuid.uuid4().hex[:8]}"
    first, crawler = await run(make_chain, db, owner, people, 0.999, 0.05, url)
    [(candidate_id, _, _)] = candidate(db, first)
    answered = await reviews.answer(crawler.settings, owner, candidate_id, yes=False)
    assert answered == reviews.Answered("no", None)
    await close_pools()
    again, _ = await run(make_chain, db, owner, people, 0.999, 0.05, url)
    [(_, _, sealed)] = candidate(db, again)
    assert sealed is None and finding_count(db, again) == 0

    other_url = f"http://127.0.0.1:9/person/{uuid.uuid4().hex[:8]}"
    first, crawler = await run(make_chain, db, owner, people, 0.999, 0.05, other_url)
    [(candidate_id, _, _)] = candidate(db, first)
    answered = await reviews.answer(crawler.settings, owner, candidate_id, yes=True)
    assert answered.decision == "yes" and finding_count(db, first) > 0
    await close_pools()
    later, crawler = await run(make_chain, db, owner, people, 0.999, 0.05, other_url)
    assert candidate(db, later) == [] and finding_count(db, later) > 0
    evidence = db.execute("SELECT DISTINCT evidence->>'review' FROM findings WHERE scan_id = %s", (later,)).fetchall()
    assert evidence == [("yes",)] and crawler.stats.get_value("match/review_yes") == 1
    await close_pools()


def test_key_rotation_covers_the_review_copy(own_database_url, tmp_path):
    import base64

    from crawler.db.migrate import connect
    from crawler.security.evidence import ScreenshotStore
    from crawler.security.keyring import KeyRing, parse_blind_index_key, parse_encryption_keys
    from crawler.security.rotate import rotate

    blind = parse_blind_index_key(base64.b64encode(b"i" * 32).decode())
    old_key, new_key = (f"{n}:" + base64.b64encode(n.encode() * 32).decode() for n in ("o", "n"))
    old, rotated, new = (KeyRing(parse_encryption_keys(k), blind) for k in (old_key, f"{new_key},{old_key}", new_key))
    scan_id = str(uuid.uuid4())
    with connect(own_database_url) as conn:
        conn.execute("INSERT INTO websites (id, name, base_url) VALUES ('rot', 'r', 'http://r') ON CONFLICT DO NOTHING")
        conn.execute("INSERT INTO scans (id, spider) VALUES (%s, 'rot')", (scan_id,))
        conn.execute(
            "INSERT INTO rejected_candidates (scan_id, website_id, listing_url_ciphertext, listing_url_index, key_id, "
            "confidence, threshold, review_ciphertext) VALUES (%s, 'rot', %s, 'u', %s, 0.7, 0.85, %s)",
            (
                scan_id,
                old.encrypt("http://r/maybe", context.rejected_listing_url(scan_id)),
                old.current_key_id,
                old.encrypt(b'{"full_name": "Ann"}', context.rejected_review(scan_id)),
            ),
        )
        assert rotate(conn, rotated, ScreenshotStore(tmp_path, rotated))["rejected_candidates"] == 1
        row = conn.execute(
            "SELECT review_ciphertext FROM rejected_candidates WHERE scan_id = %s", (scan_id,)
        ).fetchone()
        sealed = bytes(row["review_ciphertext"] if isinstance(row, dict) else row[0])
    assert new.decrypt(sealed, context.rejected_review(scan_id)) == b'{"full_name": "Ann"}'
