"""Which shared job a worker joins: same command -> same job; two scans or two crawls never mix."""

from types import SimpleNamespace

from scrapy.settings import Settings

from crawler.scheduling.shared import job_id, job_key


def spider(name="fetch", scan_id=None, **arguments):
    scan = SimpleNamespace(scan_id=scan_id) if scan_id else None
    return SimpleNamespace(name=name, scan=scan, spider_arguments=arguments)


def test_same_command_shares_a_job_and_different_arguments_do_not():
    settings = Settings()
    assert job_id(settings, spider(urls="a,b", count="3")) == job_id(settings, spider(count="3", urls="a,b"))
    assert job_id(settings, spider(urls="a,b")) != job_id(settings, spider(urls="a,c"))
    assert job_id(settings, spider()) == "fetch"
    assert job_id(settings, spider(urls="a", job_priority="5")) == job_id(settings, spider(urls="a"))


def test_each_scan_is_its_own_job_and_scheduler_job_names_one():
    settings = Settings()
    first, second = spider("scan", scan_id="s-1", last_name="Doe"), spider("scan", scan_id="s-2", last_name="Doe")
    assert job_id(settings, first) == "scan:s-1" != job_id(settings, second)
    named = Settings(
        {"SCHEDULER_JOB": "nightly", "SCHEDULER_KEY": "%(prefix)ssched:{%(job)s}", "REDIS_KEY_PREFIX": "p:"}
    )
    assert job_key(named, first) == job_key(named, second) == "p:sched:{scan:nightly}"


def test_the_crawl_command_names_the_job_by_its_arguments_for_any_spider():
    from crawler.commands.crawl import arguments_digest
    from crawler.spider_args import SpiderArgumentError

    events = spider("events")  # records no spider_arguments of its own
    one, other = (Settings({"SCHEDULER_JOB_ARGUMENTS": arguments_digest({"source": s, "_job": "x"})}) for s in "ab")
    assert job_id(one, events) != job_id(other, events)
    assert arguments_digest({"source": "a", "_job": "1", "job_priority": "3"}) == arguments_digest({"source": "a"})
    assert job_id(Settings({"SCHEDULER_JOB_ARGUMENTS": arguments_digest({})}), events) == "events"
    try:
        arguments_digest({"job_priority": "high"})
    except SpiderArgumentError as error:
        assert str(error) == "-a job_priority: expected a whole number"
    else:
        raise AssertionError("a bad job_priority was accepted")
