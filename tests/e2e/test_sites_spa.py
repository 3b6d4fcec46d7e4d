"""`scrapy crawl spa` against the sandbox: pages rendered in Chromium, the terms modal accepted by a page
action, every cursor page loaded, values read from the profile page (the teasers are masked)."""

from sites_support import configure, crawl_site, crawl_stats, finding_urls, person_arguments, scan_row, site_stats

from sandbox.brokers import spa
from sandbox.population import default_population, ground_truth

SITE = "spa"


def test_rendered_search_and_profile_give_the_listing(scrapy_cmd, crawl_env, sandbox, db):
    configure(sandbox[SITE])
    target = default_population().get("P000129")  # John M. Johnson, Orlando FL
    scan_id, _, seconds = crawl_site(scrapy_cmd, crawl_env, sandbox, SITE, person_arguments(target))
    print(f"spa one-person crawl: {seconds:.1f} s wall")
    status, counters = scan_row(db, scan_id)
    assert status == "completed" and counters[SITE]["outcome"] == "found"
    assert finding_urls(db, scan_id, SITE) == {sandbox[SITE] + ground_truth(target)[SITE]}
    # the app only calls its API once the terms are accepted (403 before): every call was answered
    site = site_stats(sandbox[SITE])
    assert site["requests"] >= 2 and site["statuses"] == {"200": site["requests"]}


def test_every_cursor_page_is_loaded(scrapy_cmd, crawl_env, sandbox):
    """25 John Smiths: the page action clicks "Show more results" until it hides (3 API pages)."""
    configure(sandbox[SITE])
    listed = [p for p in default_population().search("John", "Smith") if spa.listing_url(p)]
    assert len(listed) > 20
    person = listed[0]
    _, result, _ = crawl_site(
        scrapy_cmd, crawl_env, sandbox, SITE, person_arguments(person, state=False), SITES_MAX_CANDIDATES=1
    )
    assert f"{SITE}: candidates {len(listed)}, " in result.stderr
    assert crawl_stats(result.stderr).get("retry/max_reached") is None
    search_calls = 3  # 10 a page
    assert site_stats(sandbox[SITE])["requests"] >= search_calls + 1
