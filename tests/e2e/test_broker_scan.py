"""`scrapy crawl scan` over fastpeople and thatsthem with their rate limits lowered: fastpeople's
"Rate Limit Exceeded" page (status 200) and thatsthem's 403 with Retry-After are classified, waited
out, and both listings are still found; the scan completes (never "no results")."""

from broker_support import counters, crawl, listing_urls, namesakes, site_config, stats, summary, target

from sandbox.population import ground_truth
from support import http


def test_scan_waits_out_both_sites_limits_and_finds_both_listings(crawl_env, sandbox, db):
    person = target("fastpeople", 3, 3, sites=("thatsthem",))
    on_thatsthem = len(namesakes("thatsthem", person))
    assert on_thatsthem >= 1
    # one request more than each site allows in a minute: exactly one refusal each
    with (
        site_config(sandbox["fastpeople"], rate_limit_per_minute=3),
        site_config(sandbox["thatsthem"], rate_limit_per_minute=on_thatsthem),
    ):
        scan_id, result = crawl(
            "scan", person, crawl_env, sandbox, "-a", "sites=fastpeople,thatsthem", fresh=False, timeout=400
        )
        refused = {site: http(f"{sandbox[site]}/_sandbox/stats").json() for site in ("fastpeople", "thatsthem")}
    assert result.returncode == 0, result.stderr[-3000:]
    assert refused["fastpeople"]["counters"].get("rate_limited", 0) >= 1, refused["fastpeople"]
    assert refused["thatsthem"]["counters"].get("forbidden", 0) >= 1, refused["thatsthem"]
    figures = stats(result.stderr)
    assert figures.get("blocks/rate_limited", 0) >= 1 and figures.get("blocks/blocked", 0) >= 1, figures
    assert figures.get("retry/max_reached", 0) == 0, figures
    urls = listing_urls(db, scan_id)
    for site in ("fastpeople", "thatsthem"):
        assert sandbox[site] + ground_truth(person)[site] in urls
        assert "error_" not in summary(result.stderr, site)
    assert summary(result.stderr, "fastpeople").startswith("candidates 3, details 3, listings 3")
    assert counters(db, scan_id)[0] == "completed"
