"""`scrapy crawl thatsthem` against the sandbox: ground truth by name and by phone lookup, no results
(the 403 with Retry-After is waited out in test_broker_scan.py)."""

from broker_support import counters, crawl, listing_urls, summary, target

from sandbox.population import ground_truth


def test_crawl_finds_the_persons_record(crawl_env, sandbox, db):
    person = target("thatsthem")
    scan_id, result = crawl("thatsthem", person, crawl_env, sandbox)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sandbox["thatsthem"] + ground_truth(person)["thatsthem"] in listing_urls(db, scan_id)
    assert counters(db, scan_id)[0] == "completed"
    assert "error_" not in summary(result.stderr, "thatsthem")


def test_phone_lookup_runs_next_to_the_name_search(crawl_env, sandbox, db):
    person = target("thatsthem", skip=1)
    phone = person.phones[0].number
    scan_id, result = crawl("thatsthem", person, crawl_env, sandbox, "-a", f"phone={phone}")
    assert result.returncode == 0, result.stderr[-3000:]
    line = summary(result.stderr, "thatsthem")
    assert "pages 2" in line, line  # the name search and the /phone/ lookup
    assert sandbox["thatsthem"] + ground_truth(person)["thatsthem"] in listing_urls(db, scan_id)


def test_no_results(crawl_env, sandbox, db):
    person = target("thatsthem")
    person = type(
        "P",
        (),
        {"first_name": "Zebulon", "last_name": "Qxyzzy", "middle_name": "", "age": 40, "current": person.current},
    )()
    scan_id, result = crawl("thatsthem", person, crawl_env, sandbox)
    assert result.returncode == 0, result.stderr[-3000:]
    assert summary(result.stderr, "thatsthem") == "candidates 0, pages 1"
    assert db.execute("SELECT count(*) FROM findings WHERE scan_id = %s", (scan_id,)).fetchone()[0] == 0
