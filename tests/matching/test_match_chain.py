"""Candidates of a scan through the project's real pipeline chain (ITEM_PIPELINES order),
against the real PostgreSQL: accepted ones become findings, rejected ones audit rows."""

import uuid

import pytest
from scrapy import Spider
from scrapy.utils.misc import build_from_crawler, load_object
from scrapy.utils.test import get_crawler

from crawler import settings as project_settings
from crawler import signals as project_signals
from crawler.db.pool import close_pools
from crawler.items import PersonListing, TableRows
from crawler.scans import ScanContext
from crawler.security.context import rejected_listing_url
from sandbox.population import default_population
from support import BLIND_INDEX_KEY, ENCRYPTION_KEYS, crawl_keyring
from tools.evaluate_matching import site_listing, target_query

PNG = b"\x89PNG\r\n\x1a\n" + b"evidence" * 50


class ScanSpider(Spider):
    name = "match-test"


@pytest.fixture
def scan_row(db):
    scan_id = str(uuid.uuid4())
    db.execute("INSERT INTO scans (id, spider) VALUES (%s, 'match-test')", (scan_id,))
    for site in ("fastpeople", "thatsthem"):
        db.execute(
            "INSERT INTO websites (id, name, base_url) VALUES (%s, %s, 'http://x') ON CONFLICT DO NOTHING", (site, site)
        )
    return scan_id


async def run_chain(database_url, tmp_path, scan: ScanContext, items):
    values = {k: getattr(project_settings, k) for k in dir(project_settings) if k.isupper()}
    values.update(
        DATABASE_URL=database_url,
        DATA_DIR=str(tmp_path),
        CRAWLER_ENCRYPTION_KEYS=ENCRYPTION_KEYS,
        CRAWLER_BLIND_INDEX_KEY=BLIND_INDEX_KEY,
        REDIS_URL="",
        PG_FLUSH_SECONDS=60,
        SPIDER_MODULES=[],
    )
    crawler = get_crawler(ScanSpider, settings_dict=values)
    crawler.spider = ScanSpider()
    crawler.spider.scan = scan
    sent = []
    for signal, kind in ((project_signals.found_data, "found"), (project_signals.candidate_rejected, "rejected")):

        def receiver(scan_id, site, listing, confidence, kind=kind):
            sent.append((kind, scan_id, site, listing.listing_url, confidence))

        crawler.signals.connect(receiver, signal=signal, weak=False)
    order = sorted(values["ITEM_PIPELINES"].items(), key=lambda kv: kv[1])
    pipelines = [build_from_crawler(load_object(path), crawler) for path, _ in order]
    assert "pipelines.match.MatchPipeline" in dict(order)
    out = []
    for p in pipelines:
        if hasattr(p, "open_spider"):
            await p.open_spider()
    try:
        for item in items:
            passed = item
            for p in pipelines:
                result = p.process_item(passed)
                passed = await result if hasattr(result, "__await__") else result
            out.append(passed)
    finally:
        for p in pipelines:
            if hasattr(p, "close_spider"):
                await p.close_spider()
        await close_pools()
    return crawler, out, sent


async def test_candidates_are_accepted_or_kept_as_rejected(database_url, tmp_path, db, scan_row):
    population = default_population()
    smiths = [p for p in population.people if (p.first_name, p.last_name) == ("John", "Smith")]
    target = smiths[0]
    namesake = next(p for p in smiths[1:] if abs(p.age - target.age) > 3)
    scan = ScanContext(scan_row, target_query(target))
    mine = site_listing("fastpeople", target, population)
    theirs = site_listing("thatsthem", namesake, population)
    for item, n in ((mine, 1), (theirs, 2)):
        item.scan_id, item.listing_url, item.screenshot = scan_row, f"http://127.0.0.1:9/person/{n}", PNG

    crawler, out, sent = await run_chain(database_url, tmp_path, scan, [mine, theirs])

    assert [o.table for o in out if isinstance(o, TableRows)] == ["findings", "rejected_candidates"]
    stats = crawler.stats
    assert (stats.get_value("match/accepted"), stats.get_value("match/rejected")) == (1, 1)
    assert [(k, s, u) for k, _, s, u, _ in sent] == [
        ("found", "fastpeople", mine.listing_url),
        ("rejected", "thatsthem", theirs.listing_url),
    ]
    accepted_confidence = sent[0][4]
    assert accepted_confidence >= project_settings_threshold()

    findings = db.execute("SELECT DISTINCT website_id, confidence FROM findings WHERE scan_id = %s", (scan_row,))
    assert [(w, round(c, 3)) for w, c in findings.fetchall()] == [("fastpeople", round(accepted_confidence, 3))]
    rows = db.execute(
        "SELECT website_id, listing_url_ciphertext, listing_url_index, confidence, threshold, evidence "
        "FROM rejected_candidates WHERE scan_id = %s",
        (scan_row,),
    ).fetchall()
    assert len(rows) == 1
    site, ciphertext, index, confidence, threshold, evidence = rows[0]
    ring = crawl_keyring()
    assert site == "thatsthem" and confidence < threshold == pytest.approx(project_settings_threshold())
    assert ring.decrypt_text(ciphertext, rejected_listing_url(scan_row)) == theirs.listing_url
    assert bytes(index) == ring.blind_index(theirs.listing_url) and theirs.listing_url.encode() not in bytes(ciphertext)
    assert evidence["age"]["level"] == "disagree" and evidence["name"]["level"] == "exact"
    assert "smith" not in str(evidence).casefold()  # levels and weights, no values
    assert not db.execute(
        "SELECT 1 FROM screenshots s JOIN findings f ON f.screenshot_sha256 = s.sha256 "
        "WHERE f.website_id = 'thatsthem' AND f.scan_id = %s",
        (scan_row,),
    ).fetchall()


async def test_listings_without_a_scan_pass_untouched(database_url, tmp_path):
    from pipelines.match import MatchPipeline

    crawler = get_crawler(Spider, settings_dict={"MATCH_THRESHOLD": "0.85"})
    crawler.spider = Spider(name="plain")
    item = PersonListing(site="s", scan_id="x", listing_url="u", full_name="Jane Doe", confidence=0.3)
    assert await MatchPipeline.from_crawler(crawler).process_item(item) is item and item.confidence == 0.3
    assert crawler.stats.get_value("match/accepted") is None


def project_settings_threshold() -> float:
    return float(project_settings.MATCH_THRESHOLD)
