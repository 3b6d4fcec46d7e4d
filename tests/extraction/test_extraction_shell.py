"""The scrapy shell helper: shell.run(site, response) prints and returns the extraction."""

from extraction_pages import site_page as page

from crawler.extraction import shell


def test_run_detects_list_and_detail_pages(capsys):
    listing = shell.run("fastpeople", page("fastpeople", "list", "http://fp.test/name/john-smith"))
    assert len(listing.candidates) == 10
    out = capsys.readouterr().out
    assert out.startswith("fastpeople list: 10 candidate(s), next page http://fp.test/name/john-smith/page/2")
    record = shell.run("thatsthem", page("thatsthem", "detail", "http://tt.test/person/John-Smith/9bd2ea20b3"))
    assert record["full_name"] == "John C. Smith"
    assert "thatsthem detail:" in capsys.readouterr().out
    shell.run("thatsthem", page("thatsthem", "no_results", "http://tt.test/name/x-y"))
    assert "0 candidate(s), next page None, no-results marker yes" in capsys.readouterr().out
