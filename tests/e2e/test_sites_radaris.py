"""`scrapy crawl radaris` against the sandbox: the search goes through the site's POST form (session
cookie + CSRF token), result pages are followed until the *next* item is disabled, and the hard 403
with Retry-After is waited out rather than reported as "no results"."""

import re

import pytest
from sites_support import (
    configure,
    crawl_site,
    crawl_stats,
    finding_urls,
    module_env,
    person_arguments,
    scan_row,
    site_stats,
)

from sandbox.brokers import radaris
from sandbox.population import default_population, ground_truth
from support import run_scrapy

SITE = "radaris"
LIMIT = 5  # requests a minute the sandbox allows in the 403 test (the crawl needs 8)


@pytest.fixture(scope="module")
def limited_crawl(sandbox, database_url, tmp_path_factory):
    """One John Smith crawl without a state (28 results on 3 pages) under a 5-a-minute limit; the details of
    the first two candidates only, to keep it short. Target: the first card, P000001 (John C. Smith, 87)."""
    configure(sandbox[SITE], rate_limit_per_minute=LIMIT)
    target = default_population().get("P000001")
    env = module_env(database_url, tmp_path_factory.mktemp("radaris"))
    scan_id, result, seconds = crawl_site(
        run_scrapy, env, sandbox, SITE, person_arguments(target, state=False), SITES_MAX_CANDIDATES=2
    )
    return target, scan_id, result, site_stats(sandbox[SITE]), seconds


def test_form_search_and_every_result_page(limited_crawl, sandbox, db):
    target, scan_id, result, _, _ = limited_crawl
    listed = [p for p in default_population().search("John", "Smith") if radaris.listing_url(p)]
    assert len(listed) > 20  # three pages: the crawl must page until li.next is disabled
    summary = re.search(rf"{SITE}: (candidates .*)", result.stderr).group(1)  # the spider's closing line
    assert summary.startswith(f"candidates {len(listed)},") and summary.endswith("details 2, listings 2, pages 3")
    status, counters = scan_row(db, scan_id)
    assert status == "completed" and counters[SITE]["outcome"] == "found"
    assert sandbox[SITE] + ground_truth(target)[SITE] in finding_urls(db, scan_id, SITE)


def test_the_hard_403_is_waited_out(limited_crawl):
    _, _, result, site, seconds = limited_crawl
    assert site["statuses"].get("403", 0) >= 1  # the limit was hit...
    assert site["statuses"].get("303") == 1  # (one form POST, accepted: session cookie and token were right)
    stats = crawl_stats(result.stderr)
    assert stats["ratelimit/pauses"] >= 1  # ...the site's key paused for its Retry-After...
    assert "retry/max_reached" not in stats and stats["item_scraped_count"] >= 2  # ...and nothing was lost
    assert seconds > 30  # a minute's window: the crawl waited instead of hammering
