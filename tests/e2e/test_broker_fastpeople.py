"""`scrapy crawl fastpeople` against the sandbox: ground truth found, pagination to the last page,
no results, argument errors (the rate-limit page is in test_broker_scan.py)."""

import pytest
from broker_support import counters, crawl, listing_urls, summary, target

from crawler.extraction import load_definition
from crawler.security.context import finding_value
from sandbox.population import default_population, ground_truth
from support import crawl_keyring, run_scrapy


def test_crawl_finds_the_persons_listing_with_decoded_emails(crawl_env, sandbox, db):
    person = target("fastpeople")
    scan_id, result = crawl("fastpeople", person, crawl_env, sandbox)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sandbox["fastpeople"] + ground_truth(person)["fastpeople"] in listing_urls(db, scan_id)
    ring = crawl_keyring()
    rows = db.execute("SELECT value_ciphertext FROM findings WHERE scan_id = %s AND data_type = 'email'", (scan_id,))
    emails = {ring.decrypt_text(row[0], finding_value(scan_id, "email")) for row in rows}
    assert set(person.emails) <= emails  # Cloudflare-obfuscated on the page
    status, _ = counters(db, scan_id)
    assert status == "completed"
    sha, definition, opt_out = db.execute(
        "SELECT definition_sha256, definition, opt_out FROM websites WHERE id = 'fastpeople'"
    ).fetchone()
    assert sha == load_definition("spiders/sites/fastpeople.yaml").sha256
    assert definition["list"]["items"] == {"css": "div.people-list div.card"} and opt_out["steps"][0] == {
        "navigate": "{opt_out_url}"
    }
    assert "scan_error" not in result.stderr and " parse_error " not in result.stderr


def test_follows_result_pages_to_the_last_one(crawl_env, sandbox):
    """John Smith (no state): 23 fastpeople records over 3 pages; details capped to keep it short."""
    env = dict(crawl_env, SITES_MAX_CANDIDATES="1")
    _, result = crawl("fastpeople", _named("John", "Smith"), env, sandbox, "-a", "state=")
    assert result.returncode == 0, result.stderr[-3000:]
    line = summary(result.stderr, "fastpeople")
    assert "pages 3" in line and "candidates 23" in line and "details 1" in line, line
    assert "error_" not in line


def test_no_results_is_not_an_error(crawl_env, sandbox, db):
    scan_id, result = crawl("fastpeople", _named("Zebulon", "Qxyzzy"), crawl_env, sandbox)
    assert result.returncode == 0, result.stderr[-3000:]
    # one result page, no candidates, and no error counted (an empty page without the marker is a parse_error)
    assert summary(result.stderr, "fastpeople") == "candidates 0, pages 1"
    assert db.execute("SELECT count(*) FROM findings WHERE scan_id = %s", (scan_id,)).fetchone()[0] == 0
    assert counters(db, scan_id)[0] == "completed"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["-a", "first_name=John"], "error: -a last_name: required"),
        (
            ["-a", "first_name=John", "-a", "last_name=Smith", "-a", "state=XX"],
            "error: -a state: expected a two-letter US state code such as IL",
        ),
        (
            ["-a", "first_name=John", "-a", "last_name=Smith", "-a", "base_url=ftp://x"],
            "error: -a base_url: expected an http(s):// URL, got 'ftp://x'",
        ),
    ],
)
def test_bad_arguments_one_line_exit_2_no_crawl(crawl_env, args, line):
    result = run_scrapy(["crawl", "fastpeople", *args], crawl_env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [line]


class _named:
    """A query-only person (no state, age or middle name unless given)."""

    def __init__(self, first, last):
        self.first_name, self.last_name, self.middle_name, self.age = first, last, "", 30
        self.current = type("Place", (), {"state": "IL", "city": ""})()


def test_population_has_the_names_used_here():
    population = default_population()
    assert len(population.search("John", "Smith")) >= 23 and not population.search("Zebulon", "Qxyzzy")
