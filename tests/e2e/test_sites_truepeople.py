"""`scrapy crawl truepeople` against the sandbox: the interstitial is passed with its cookie, a burst
captcha slows the crawl down instead of ending it, and the target's listing is found either way."""

import pytest
from sites_support import configure, crawl_site, crawl_stats, finding_urls, person_arguments, scan_row, site_stats

from sandbox.population import default_population, ground_truth

SITE = "truepeople"


@pytest.fixture(scope="module")
def target():
    """Listed on truepeople, with a namesake in the same state (the match pipeline must tell them apart)."""
    return default_population().get("P000129")  # John M. Johnson, Orlando FL


def test_the_interstitial_cookie_is_kept_and_the_listing_found(scrapy_cmd, crawl_env, sandbox, db, target):
    configure(sandbox[SITE])
    scan_id, result, seconds = crawl_site(scrapy_cmd, crawl_env, sandbox, SITE, person_arguments(target))
    print(f"truepeople one-person crawl: {seconds:.1f} s wall")  # the README's figure (pytest -s)
    status, counters = scan_row(db, scan_id)
    assert status == "completed"
    assert counters[SITE]["outcome"] == "found" and counters[SITE]["accepted"] >= 1
    assert sandbox[SITE] + ground_truth(target)[SITE] in finding_urls(db, scan_id, SITE)
    # the site challenged us (503 "Just a moment...") and we got past it by sending its cookie back
    site = site_stats(sandbox[SITE])["counters"]
    assert site["interstitial"] >= 1 and site["status_503"] == site["interstitial"]
    stats = crawl_stats(result.stderr)
    assert stats["blocks/interstitial"] >= 1 and stats["retry/reason_count/block_interstitial"] >= 1
    assert "retry/max_reached" not in stats and counters[SITE]["blocks"]["interstitial"] >= 1


def test_a_burst_captcha_slows_the_crawl_down_and_the_data_still_comes(scrapy_cmd, crawl_env, sandbox, db):
    """The site sends more than 2 requests in 3 s to /InternalCaptcha: at our 1 request/s that happens at
    once; the crawl must classify it as a captcha, pause, go slower and fetch every candidate."""
    person = default_population().get("P000004")  # John L. Smith, Chicago IL: 4 candidates in IL
    configure(sandbox[SITE], burst_limit=2, burst_seconds=3.0)
    scan_id, result, _ = crawl_site(
        scrapy_cmd, crawl_env, sandbox, SITE, person_arguments(person), SLOWDOWN_PAUSE_SECONDS=4
    )
    site = site_stats(sandbox[SITE])["counters"]
    assert site["captcha"] >= 1  # the quirk was met...
    stats = crawl_stats(result.stderr)
    assert stats["blocks/captcha"] >= 1 and stats["slowdown/cuts/captcha"] >= 1  # ...seen as a captcha, slowed down
    assert "retry/max_reached" not in stats  # ...and passed: nothing given up
    status, counters = scan_row(db, scan_id)
    assert status == "completed" and counters[SITE]["blocks"]["captcha"] >= 1
    candidates = len([p for p in default_population().search("John", "Smith", state="IL") if ground_truth(p).get(SITE)])
    assert counters[SITE]["listings"] == candidates  # every candidate's page, not "no results"
    assert sandbox[SITE] + ground_truth(person)[SITE] in finding_urls(db, scan_id, SITE)
