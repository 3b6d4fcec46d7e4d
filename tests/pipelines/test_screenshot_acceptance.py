"""Only accepted listings get evidence: through the pipeline chain, with a real (paused)
Scrapy engine, a listing the match pipeline accepts gets a screenshot request and a
rejected candidate gets none."""

import hashlib

import pytest
from scrapy import signals

from crawler.items import PersonListing
from crawler.scans import ScanContext
from crawler.signals import shutdown_requested
from crawler.spider_args import PersonQuery

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"carried" * 100
TARGET = PersonQuery(first_name="Jane", last_name="Doe", city="Springfield", state="IL", age=41)


def candidate(scan_id, n, **values):
    base = {
        "site": "directory",
        "scan_id": scan_id,
        "listing_url": f"http://127.0.0.1:9/person/P{n:06d}",
        "full_name": "Jane Q. Doe",
        "age": 41,
        "locations": ["Springfield, IL"],
        "addresses": ["12 Main St, Springfield, IL 62701"],
    }
    return PersonListing(**{**base, **values})


@pytest.fixture
async def engine_chain(make_chain, scan):
    """The chain with a scan for the match pipeline and the crawler's real engine, opened and
    paused: screenshot requests reach its scheduler (``request_scheduled``) and stay there."""
    # the chain runs the pipelines itself; the project's extensions (scan row, metrics server)
    # stay out; nothing is downloaded (no browser, no reactor needed)
    chain = make_chain(
        ITEM_PIPELINES={},
        EXTENSIONS={},
        DOWNLOAD_HANDLERS={"http": None, "https": None},
    )
    crawler = chain.crawler
    crawler.spider.scan = ScanContext(scan, TARGET)
    crawler.engine = crawler._create_engine()
    await crawler.engine.open_spider_async(close_if_idle=False)
    crawler.engine.pause()
    scheduled = []

    def on_scheduled(request, **_):
        scheduled.append(request)
        # the request will not be downloaded (the engine is paused): a SIGTERM's drain releases
        # the waiting pipeline, which keeps the finding without a screenshot
        crawler.signals.send_catch_log(shutdown_requested)

    crawler.signals.connect(on_scheduled, signal=signals.request_scheduled, weak=False)
    async with chain:
        yield chain, scheduled
    await crawler.engine.close_spider_async(reason="finished")


async def test_a_rejected_candidate_gets_no_screenshot_and_an_accepted_listing_one(engine_chain, scan, db):
    chain, scheduled = engine_chain
    namesake = candidate(scan, 1, full_name="Robert Smith", age=70, locations=["Omaha, NE"], addresses=[])
    rejected = await chain.push(namesake)
    assert rejected.table == "rejected_candidates" and not namesake.accepted
    assert scheduled == []

    target = candidate(scan, 2)
    found = await chain.push(target)
    assert found.table == "findings" and target.accepted
    assert [(r.url, r.meta["screenshot"]) for r in scheduled] == [(target.listing_url, True)]
    assert chain.crawler.stats.get_value("screenshots/failed/shutdown") == 1  # drained, finding kept


async def test_a_replayed_listing_is_scored_against_its_original_spiders_scan(make_chain, scan, db):
    """replay_dead_letters has no scan of its own: the rebuilt spider that made the request has."""
    from scrapy import Spider

    from spiders.replay_dead_letters import ReplayDeadLettersSpider

    chain = make_chain(ITEM_PIPELINES={}, EXTENSIONS={})
    replay = ReplayDeadLettersSpider()
    original = Spider(name="broker")
    original.scan = ScanContext(scan, TARGET)
    replay.originals["broker|{}"] = original
    chain.crawler.spider = replay
    replay.settings = chain.crawler.settings
    # the scan had finished: its stored findings counts (crawler.store.stats) say it found nothing
    db.execute("UPDATE scans SET status = 'completed', findings_summary = '{}' WHERE id = %s", (scan,))
    async with chain:
        namesake = candidate(scan, 3, full_name="Robert Smith", age=70, locations=["Omaha, NE"], addresses=[])
        assert (await chain.push(namesake)).table == "rejected_candidates" and not namesake.accepted
        target = candidate(scan, 4, screenshot=PNG)
        found = await chain.push(target)
        assert found.table == "findings" and target.accepted
        replay.findings_stored(found)  # the item_scraped signal of the replay crawl
    await replay.finish_marking(replay, "finished")  # spider_closed: after the writer's last flush
    summary = db.execute("SELECT findings_summary FROM scans WHERE id = %s", (scan,)).fetchone()[0]
    assert summary["directory"]["name"] == 1  # the replayed listing now counts in the scan's stats


@pytest.mark.parametrize("accepted", [True, False])
async def test_a_carried_png_is_kept_only_for_an_accepted_listing(make_chain, scan, db, accepted):
    png = PNG + bytes([accepted])
    listing = candidate(scan, 3, screenshot=png, accepted=accepted)
    async with make_chain() as chain:
        screenshots = chain.pipeline("ScreenshotPipeline")
        out = await screenshots.process_item(listing)
    sha = hashlib.sha256(png).hexdigest()
    stored = db.execute("SELECT 1 FROM screenshots WHERE sha256 = %s", (sha,)).fetchall()
    assert out.screenshot is None
    assert (out.screenshot_sha256, bool(stored)) == ((sha, True) if accepted else (None, False))


def test_a_listing_is_not_accepted_until_the_match_pipeline_says_so():
    assert candidate("x", 4).accepted is False
