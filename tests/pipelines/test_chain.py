"""Person listings through validate -> dedup -> screenshots -> encrypt -> postgres."""

import hashlib
import uuid

import pytest
from scrapy.exceptions import DropItem

from crawler.items import PersonListing, Screenshot
from crawler.security import context
from crawler.security.evidence import ScreenshotStore, screenshots_dir
from support import crawl_keyring

PNG = b"\x89PNG\r\n\x1a\n" + b"evidence" * 100


def listing(scan_id, n=1, **overrides):
    values = {
        "site": "directory",
        "scan_id": scan_id,
        "listing_url": f"http://127.0.0.1:8100/person/P{n:06d}",
        "full_name": "Jane  Q. Doe",
        "age": 41,
        "phones": ["(217) 555-0123", "not a phone"],
        "emails": ["Jane.Doe@Example.com", "broken@"],
        "addresses": ["12 main street, springfield, il 62701"],
        "relatives": ["John Doe"],
    }
    values.update(overrides)
    return PersonListing(**values)


async def test_a_listing_is_normalised_encrypted_and_stored(make_chain, db, scan):
    async with make_chain() as chain:
        out = await chain.push(listing(scan, screenshot=PNG))
        assert out.table == "findings"
    ring = crawl_keyring()
    found = db.execute(
        "SELECT data_type, value_ciphertext, key_id, screenshot_sha256, listing_group FROM findings WHERE scan_id = %s",
        (scan,),
    ).fetchall()
    values = {(t, ring.decrypt_text(v, context.finding_value(scan, t))) for t, v, *_ in found}
    assert values == {
        ("name", "Jane Q. Doe"),
        ("age", "41"),
        ("phone", "+12175550123"),
        ("email", "jane.doe@example.com"),
        ("address", "12 Main St, Springfield, IL 62701"),
        ("relative", "John Doe"),
    }
    assert {r[2] for r in found} == {ring.current_key_id}
    sha = hashlib.sha256(PNG).hexdigest()
    assert {r[3] for r in found} == {sha} and len({r[4] for r in found}) == 1
    stored = db.execute("SELECT path, bytes FROM screenshots WHERE sha256 = %s", (sha,)).fetchone()
    assert stored[1] == len(PNG)
    store = ScreenshotStore(screenshots_dir(chain.crawler.settings), ring)
    assert PNG not in (store.root / stored[0]).read_bytes() and store.load(sha) == PNG


async def test_invalid_values_become_dead_letters_without_clear_values(make_chain, db, scan):
    async with make_chain() as chain:
        await chain.push(listing(scan, n=2))
    letters = db.execute(
        "SELECT reason, fields, payload_ciphertext, kind, spider FROM dead_letters WHERE scan_id = %s ORDER BY reason",
        (scan,),
    ).fetchall()
    assert [(r[0], r[1]) for r in letters] == [
        ("invalid emails: not a valid e-mail address (syntax or domain form)", ["emails"]),
        ("invalid phones: not a phone number", ["phones"]),
    ]
    ring = crawl_keyring()
    payload = ring.decrypt_text(letters[1][2], context.dead_letter(letters[1][3], letters[1][4]))
    assert "not a phone" in payload and b"not a phone" not in bytes(letters[1][2])
    assert chain.crawler.stats.get_value("dead_letters/record") == 2


async def test_listing_without_a_name_is_dead_lettered_and_dropped(make_chain, db, scan):
    async with make_chain() as chain:
        with pytest.raises(DropItem, match="missing full_name"):
            await chain.push(listing(scan, n=3, full_name="  "))
    reasons = db.execute("SELECT reason FROM dead_letters WHERE scan_id = %s", (scan,)).fetchall()
    assert reasons == [("listing without full_name",)]


@pytest.mark.parametrize("redis", [False, True], ids=["in-process", "redis"])
async def test_the_same_listing_twice_is_stored_once(make_chain, db, scan, redis):
    async with make_chain(redis=redis) as chain:
        await chain.push(listing(scan, n=4))
        await chain.crawler._bulk_writer.flush()  # committed: the fingerprint is marked
        with pytest.raises(DropItem, match="duplicate listing"):
            await chain.push(listing(scan, n=4))
    assert (
        db.execute("SELECT count(DISTINCT listing_url_index) FROM findings WHERE scan_id = %s", (scan,)).fetchone()[0]
        == 1
    )


async def test_the_same_person_on_two_listings_is_grouped_and_recorded(make_chain, db, scan):
    async with make_chain() as chain:
        await chain.push(listing(scan, n=10, full_name="William Harris", phones=["217-555-0199"], emails=[]))
        await chain.push(listing(scan, n=11, full_name="Bill Harirs", phones=["+1 (217) 555 0199"], emails=[]))
        await chain.push(
            listing(
                scan,
                n=12,
                full_name="William Harris",
                age=79,
                phones=["2175550142"],
                emails=[],
                addresses=["1 Elm St, Omaha, NE 68101"],
            )
        )
    groups = db.execute(
        "SELECT count(DISTINCT listing_group), count(DISTINCT listing_url_index) FROM findings WHERE scan_id = %s",
        (scan,),
    ).fetchone()
    assert groups == (2, 3)  # the namesake aged 79 elsewhere stays apart
    merge = db.execute("SELECT score, evidence FROM listing_merges WHERE scan_id = %s", (scan,)).fetchall()
    assert len(merge) == 1 and merge[0][0] >= 0.85 and merge[0][1]["shared_contact"] == 1.0


async def test_a_standalone_screenshot_is_stored(make_chain, db):
    png = PNG + uuid.uuid4().bytes
    async with make_chain() as chain:
        await chain.push(Screenshot(png=png, scan_id=str(uuid.uuid4()), site="directory"))
    assert db.execute("SELECT bytes FROM screenshots WHERE sha256 = %s", (hashlib.sha256(png).hexdigest(),)).fetchone()
