"""LLMHealer.improve against the sandbox's scripted OpenAI-compatible double, on real sandbox broker pages.

Most tests read fastpeople detail pages in its ``structural`` redesign (sections turned into one definition
list), of people whose profiles show every section, with the heuristic heal made to leave ``full_name``,
``age`` and ``phones`` unhealed; others read its result pages (cards turned into table rows), and the
masking test the redesigns of four sites. The double answers what each test scripts (right, wrong,
malformed, failing, slow). What it received is read back: no seeded personal value of the people on those
pages (names, relatives, phone digits, e-mails, street lines) ever reaches it, while the labels and tags the
model needs do. Budget, breaker and cache are the client's, exercised here through whole heals.
"""

from __future__ import annotations

import copy
import logging
import re
from urllib.parse import urlsplit

import pytest
from llm_heal_support import (
    FAILED,
    LAYOUT,
    PAGES_START,
    PEOPLE,
    RIGHT,
    SET_A,
    SET_B,
    SITE,
    WRONG_PHONES,
    answer,
    assert_nothing_personal_sent,
    assert_reads_the_truth,
    detail_pages,
    failing_heal,
    full_profiles,
    healer,
    namesakes,
    pages_of,
    raw_definition,
    register_people,
    request_leaks,
    section_xpath,
    seeded_values,
    site_pages,
)
from scrapy.settings import Settings

from crawler.ai import LLM_METRICS, LLMClient, LocalCache, condense_html
from crawler.db.pool import close_pools
from crawler.extraction import load_definitions
from crawler.extraction.definitions import validate
from crawler.extraction.engine import extract_list
from crawler.healing.heal import Heal, _definition, heal_list
from crawler.healing.llm import ROUNDS, LLMHealer, structure_hash

pytestmark = pytest.mark.usefixtures("fresh_redactor")  # what a test registers as personal stays in it


async def test_a_right_answer_heals_the_failed_fields_with_method_llm(stub, clock):
    pages = await pages_of(SET_A)
    register_people(SET_A)
    raw = raw_definition()
    heal = failing_heal(raw, pages)
    heuristic = {n: p.spec for n, p in heal.proposals.items()}
    await stub.script(answer(RIGHT))
    llm = healer(stub, clock)
    healed = await llm.improve(raw, "detail", pages, heal)
    assert healed.failed == {}
    for name in FAILED:
        assert healed.proposals[name].method == "llm"
        assert healed.definition["detail"]["fields"][name] == healed.proposals[name].spec
        assert healed.verified[name] == len(pages)  # read valid values on every page
    assert healed.proposals["age"].spec == RIGHT["age"]
    assert {n: p.spec for n, p in healed.proposals.items() if p.method != "llm"} == heuristic  # untouched
    assert healed.confidence() >= 0.75  # clears the default HEAL_AUTO_ACCEPT on three pages
    await assert_reads_the_truth(healed.definition, pages, SET_A)
    assert raw == raw_definition()  # the definition healed is not changed in place
    validate(healed.definition, f"{SITE}.yaml")  # it loads, as a stored version must
    (sent,) = await assert_nothing_personal_sent(stub, SET_A, 1)
    user = sent["messages"][-1]["content"]
    assert all(name in user for name in FAILED) and "failed" not in user
    assert sent["response_format"]["json_schema"]["schema"]["required"] == ["fields"]
    await llm.client.aclose()


async def test_a_wrong_answer_is_rejected_and_the_next_round_is_told_why(stub, clock):
    pages = await pages_of(SET_A)
    register_people(SET_A)
    raw = raw_definition()
    await stub.script(answer(WRONG_PHONES), answer({"phones": RIGHT["phones"]}))
    llm = healer(stub, clock)
    healed = await llm.improve(raw, "detail", pages, failing_heal(raw, pages))
    assert healed.failed == {}
    assert healed.proposals["phones"].spec == RIGHT["phones"] and healed.proposals["phones"].method == "llm"
    assert healed.proposals["full_name"].spec == RIGHT["full_name"]  # accepted in round 1, kept
    await assert_reads_the_truth(healed.definition, pages, SET_A)
    first, second = await assert_nothing_personal_sent(stub, SET_A, 2)
    asked = second["messages"][-1]["content"]
    assert "Your previous answer failed: phones: values not of the field's kind" in asked
    assert re.search(r"Fields: phones: [^;]*\.", asked)  # only the field still broken is asked again
    assert "full_name" not in asked.split("--- page")[0]
    assert "failed" not in first["messages"][-1]["content"]
    await llm.client.aclose()


async def test_three_wrong_rounds_leave_the_field_failed(stub, clock):
    pages = await pages_of(SET_A)
    raw = raw_definition()
    heal = failing_heal(raw, pages, failed=("phones",))
    await stub.script(*[answer({"phones": WRONG_PHONES["phones"]})] * (ROUNDS + 1))
    llm = healer(stub, clock)
    healed = await llm.improve(raw, "detail", pages, heal)
    assert "phones" not in healed.proposals
    assert healed.failed["phones"].endswith("the LLM's proposal: values not of the field's kind on a page")
    assert healed.definition["detail"]["fields"]["phones"] == raw["detail"]["fields"]["phones"]
    received = await assert_nothing_personal_sent(stub, SET_A, ROUNDS)  # never a fourth round
    assert all("values not of the field's kind" in r["messages"][-1]["content"] for r in received[1:])
    await llm.client.aclose()


@pytest.mark.parametrize(
    "scripted, outcome",
    [
        ({"malformed": True}, "malformed"),
        ({"content": {"fields": {"phones": {"css": 5}}}}, "invalid"),  # JSON, not the schema's
        ({"status": 500}, "error"),
        ({"slow": 3, "content": {"fields": RIGHT}}, "timeout"),
    ],
)
async def test_no_usable_answer_means_no_llm_heal_and_nothing_raised(stub, clock, caplog, scripted, outcome):
    pages = await pages_of(SET_A)
    register_people(SET_A)
    raw = raw_definition()
    heal = failing_heal(raw, pages)
    before = {n: p.spec for n, p in heal.proposals.items()}
    calls = LLM_METRICS.calls[("heal", outcome)]
    await stub.script(scripted)
    llm = healer(stub, clock, LLM_TIMEOUT_SECONDS="0.5")
    with caplog.at_level(logging.INFO, logger="crawler"):
        healed = await llm.improve(raw, "detail", pages, heal)
    assert set(healed.failed) == set(FAILED)
    assert {n: p.spec for n, p in healed.proposals.items()} == before
    assert all(p.method == "heuristic" for p in healed.proposals.values())
    for name in FAILED:
        assert healed.definition["detail"]["fields"][name] == raw["detail"]["fields"][name]
    assert LLM_METRICS.calls[("heal", outcome)] == calls + 1
    await assert_nothing_personal_sent(stub, SET_A, 1)  # one call; a failed one is not asked again
    assert request_leaks({"messages": [{"content": caplog.text}]}, seeded_values(SET_A)) == []  # nor in the log
    await llm.client.aclose()


async def test_an_answer_the_parser_refuses_is_told_back_and_nothing_raised(stub, clock):
    pages = await pages_of(SET_A)
    raw = raw_definition()
    await stub.script(answer({**RIGHT, "phones": {"xpath": "//dd[[["}}), answer({"phones": RIGHT["phones"]}))
    llm = healer(stub, clock)
    healed = await llm.improve(raw, "detail", pages, failing_heal(raw, pages))
    assert healed.failed == {} and healed.proposals["phones"].spec == RIGHT["phones"]
    _first, second = await assert_nothing_personal_sent(stub, SET_A, 2)
    asked = second["messages"][-1]["content"]
    # the good selectors of round 1 were kept; only the refused one is asked again, with why
    assert "Your previous answer failed: phones: the selector could not be used (" in asked
    assert re.search(r"Fields: phones: [^;]*\.", asked)
    await llm.client.aclose()


async def test_the_hourly_budget_stops_the_second_improve_before_it_calls(stub, clock):
    pages = await pages_of(SET_A)
    raw = raw_definition()
    await stub.script(answer(RIGHT), answer(RIGHT))
    llm = healer(stub, clock, HEAL_LLM_MAX_CALLS_PER_HOUR="1")
    first = await llm.improve(raw, "detail", pages, failing_heal(raw, pages))
    assert first.failed == {}
    refused = LLM_METRICS.calls[("heal", "budget_calls")]
    # another question (other fields broken): not in the cache, so it would need a call
    second = await llm.improve(raw, "detail", pages, failing_heal(raw, pages, failed=("age", "phones")))
    assert set(second.failed) == {"age", "phones"}
    assert all(p.method == "heuristic" for p in second.proposals.values())
    assert LLM_METRICS.calls[("heal", "budget_calls")] == refused + 1
    await assert_nothing_personal_sent(stub, SET_A, 1)
    assert await stub.queued() == 1  # the second answer was never asked for
    await llm.client.aclose()


async def test_failing_calls_open_the_breaker_and_later_heals_send_nothing_until_the_probe(stub, clock):
    pages = await pages_of(SET_A)
    raw = raw_definition()
    await stub.script({"status": 500}, {"status": 503}, answer(RIGHT), answer(RIGHT))
    llm = healer(stub, clock, LLM_BREAKER_FAILURES="2", LLM_BREAKER_COOLDOWN_SECONDS="60")
    for _ in range(2):  # each heal stops at its failed call: the heuristics' heal stands
        assert set((await llm.improve(raw, "detail", pages, failing_heal(raw, pages))).failed) == set(FAILED)
    opened = LLM_METRICS.calls[("heal", "breaker_open")]
    held = await llm.improve(raw, "detail", pages, failing_heal(raw, pages))
    assert set(held.failed) == set(FAILED) and LLM_METRICS.calls[("heal", "breaker_open")] == opened + 1
    assert len(await stub.received()) == 2  # the open breaker sent nothing
    clock.advance(61_000)
    probe = await llm.improve(raw, "detail", pages, failing_heal(raw, pages))  # the probe call heals
    assert probe.failed == {} and all(probe.proposals[n].method == "llm" for n in FAILED)
    await assert_nothing_personal_sent(stub, SET_A, 3)
    await llm.client.aclose()


async def test_the_same_layout_is_answered_from_the_cache(stub, clock):
    pages_a, pages_b = await pages_of(SET_A), await pages_of(SET_B)
    register_people(SET_A + SET_B)
    raw = raw_definition()
    await stub.script(answer(RIGHT), answer(RIGHT))
    cache = LocalCache()
    llm = healer(stub, clock, cache=cache)
    hits = LLM_METRICS.calls[("heal", "cache_hit")]
    first = await llm.improve(raw, "detail", pages_a, failing_heal(raw, pages_a))
    assert first.failed == {}
    # other people, other counts of phones, addresses and relatives: the same layout
    other = await llm.improve(raw, "detail", pages_b, failing_heal(raw, pages_b))
    assert other.failed == {} and all(other.proposals[n].method == "llm" for n in FAILED)
    await assert_reads_the_truth(other.definition, pages_b, SET_B)
    assert LLM_METRICS.calls[("heal", "cache_hit")] == hits + 1
    await assert_nothing_personal_sent(stub, SET_A + SET_B, 1)
    # another worker sharing the cache asks nothing either
    again = await healer(stub, clock, cache=cache).improve(raw, "detail", pages_b, failing_heal(raw, pages_b))
    assert again.failed == {}
    assert len(await stub.received()) == 1
    await llm.client.aclose()


async def test_a_cached_answer_that_no_longer_verifies_is_forgotten_and_asked_again(stub, clock):
    pages = await pages_of(SET_A)
    raw = raw_definition()
    cache = LocalCache()
    llm = healer(stub, clock, cache=cache)
    await stub.script(answer({"phones": WRONG_PHONES["phones"]}), answer({"phones": RIGHT["phones"]}))
    heal = await llm.improve(raw, "detail", pages, failing_heal(raw, pages, failed=("phones",)))
    assert heal.failed == {}
    # the wrong first answer is cached as asked; met again, it is dropped and the corrected one reused
    await stub.script(answer({"phones": RIGHT["phones"]}))
    heal = await llm.improve(raw, "detail", pages, failing_heal(raw, pages, failed=("phones",)))
    assert heal.failed == {}
    received = await assert_nothing_personal_sent(stub, SET_A, 2)
    assert len(received) == 2
    assert not any(key for key in cache.answers if "phones:1:" in key[1])  # the wrong round-1 answer is gone
    await llm.client.aclose()


async def test_a_failure_inside_the_llm_step_leaves_the_heuristic_heal_and_raises_nothing(stub, clock, caplog):
    pages = await pages_of(SET_A)
    raw = raw_definition()
    heal = failing_heal(raw, pages)
    before = copy.deepcopy(heal.definition)
    llm = healer(stub, clock)

    async def broken(*args, **kwargs):
        raise RuntimeError("John Smith (217) 555-0123")  # not in the log: only the error's type is

    llm.client.complete_json = broken
    with caplog.at_level(logging.WARNING, logger="crawler.healing"):
        healed = await llm.improve(raw, "detail", pages, heal)
    assert healed is heal and healed.definition == before and set(healed.failed) == set(FAILED)
    assert "RuntimeError" in caplog.text and "Smith" not in caplog.text and "555" not in caplog.text
    assert await stub.received() == []
    await llm.client.aclose()


@pytest.mark.parametrize(
    "site, layout",
    [
        ("fastpeople", "partial"),
        ("fastpeople", "jsonld"),
        ("truepeople", "structural"),
        ("radaris", "structural"),
        ("thatsthem", "structural"),
        ("thatsthem", "jsonld"),
    ],
)
async def test_what_the_model_gets_of_any_redesign_holds_no_seeded_value(stub, clock, site, layout):
    people = full_profiles(site)[:3]
    pages = await detail_pages(site, layout, people)
    register_people(people)
    raw = copy.deepcopy(load_definitions()[site].raw)
    fields = [f for f in ("full_name", "phones", "relatives") if f in raw["detail"]["fields"]]
    heal = Heal("detail", copy.deepcopy(raw), {}, pages=len(pages), base=raw)
    heal.failed = dict.fromkeys(fields, "no candidate with a clear margin")
    await stub.script(*[answer({f: {"css": "h1::text"} for f in fields})] * ROUNDS)
    llm = healer(stub, clock)
    await llm.improve(raw, "detail", pages, heal)
    received = await stub.received()
    assert received, "the pages were refused as unmasked"
    seeded = seeded_values(people)
    assert request_leaks({"messages": [{"content": PAGES_START + pages[0].text}]}, seeded), "the raw page shows them"
    for body in received:
        assert request_leaks(body, seeded) == [], (site, layout)
        user = body["messages"][-1]["content"]
        assert re.search(r"\bphones?\b", user, re.I), (site, layout)  # labels (or JSON-LD keys) survive
        assert re.search(r"<\w+[^>]*>", user) and "[NAME]" in user
    await llm.client.aclose()


async def test_no_key_configured_means_no_llm_healer(said_nothing_yet, caplog):
    with caplog.at_level(logging.INFO, logger="crawler.ai"):
        assert LLMHealer.from_settings({}) is None
        assert LLMHealer.from_settings({"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}) is None
    assert len([r for r in caplog.records if "heuristic" in r.getMessage()]) == 1
    healer = LLMHealer.from_settings({"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert isinstance(healer, LLMHealer)  # a key: an LLM healer
    await healer.client.aclose()


SEARCHES = [("John", "Smith"), ("James", "Brown"), ("Mary", "Johnson")]


async def test_card_fields_of_result_pages_are_healed_and_filters_may_take_arguments(stub, clock):
    paths = [f"/name/{first.lower()}-{last.lower()}" for first, last in SEARCHES]
    pages = await site_pages(SITE, LAYOUT, paths)
    people = [p for first, last in SEARCHES for p in namesakes(SITE, first, last)]
    register_people(people)
    raw = raw_definition()
    heal = heal_list(raw, pages, {})  # the heuristics find the rows (cards turned into a table)...
    assert "_card" in heal.proposals
    for name in ("age", "locations"):  # ...and are made to miss these two card fields
        heal.proposals.pop(name, None)
        heal.definition["list"]["fields"][name] = copy.deepcopy(raw["list"]["fields"][name])
    heal.failed = dict.fromkeys(("age", "locations"), "no candidate with a clear margin")
    # a filter with an argument, as the site format writes it, and one the format does not know (dropped)
    locations = {"css": "div.result-place::text", "filters": [{"replace": ["/\\s+$/", ""]}, "bogus"]}
    right_age = {"css": "td:nth-child(2)::text", "filters": ["int"]}
    await stub.script(
        answer({"age": {"css": "td.result-name a::text"}, "locations": locations}), answer({"age": right_age})
    )
    llm = healer(stub, clock)
    healed = await llm.improve(raw, "list", pages, heal)
    assert healed.failed == {}
    assert healed.proposals["age"].spec == right_age and healed.verified["age"] == len(pages)
    assert healed.proposals["locations"].spec == {"css": locations["css"], "filters": locations["filters"][:1]}
    assert all(healed.proposals[n].method == "llm" for n in ("age", "locations"))
    v1 = load_definitions()[SITE]
    truth = [extract_list(v1, page).candidates for page in await site_pages(SITE, "v1", paths)]
    found = [extract_list(_definition(healed.definition), page).candidates for page in pages]
    for name in ("age", "locations"):
        assert [[c[name] for c in page] for page in found] == [[c[name] for c in page] for page in truth], name
    assert [[urlsplit(c["url"]).path for c in page] for page in found] == [
        [urlsplit(c["url"]).path for c in page] for page in truth
    ]  # the same people, in the same order (each server its own port)
    received = await stub.received()
    assert len(received) == 2
    seeded = seeded_values(people)
    for body in received:
        assert request_leaks(body, seeded) == []
        user = body["messages"][-1]["content"]
        assert "<th>Age</th>" in user and '<tr class="result-row">' in user and "[NAME]" in user
        assert "search result page" in user
    # the name cell, through the old spec's int filter, reads nothing: the model is told so, and asked
    # again about the age alone
    asked = received[1]["messages"][-1]["content"]
    assert "Your previous answer failed: age: read on too few pages" in asked
    assert re.search(r"Fields: age: [^;]*\.", asked)
    await llm.client.aclose()


async def test_heal_answers_cached_in_postgresql_serve_another_worker_and_hold_no_personal_value(
    stub, clock, database_url, db
):
    pages_a, pages_b = await pages_of(SET_A), await pages_of(SET_B)
    raw = raw_definition()
    settings = Settings()
    settings.setmodule("crawler.settings")
    settings.setdict({"OPENAI_API_KEY": "sk-test-heal", "OPENAI_BASE_URL": stub.url, "DATABASE_URL": database_url})
    await stub.script(answer(RIGHT), answer(RIGHT))
    one = LLMHealer(LLMClient.from_settings(settings, clock=clock))
    assert (await one.improve(raw, "detail", pages_a, failing_heal(raw, pages_a))).failed == {}
    await one.client.aclose()
    other = LLMHealer(LLMClient.from_settings(settings, clock=clock))  # another worker, or a later run
    healed = await other.improve(raw, "detail", pages_b, failing_heal(raw, pages_b))
    assert healed.failed == {} and all(healed.proposals[n].method == "llm" for n in FAILED)
    await assert_reads_the_truth(healed.definition, pages_b, SET_B)
    assert len(await stub.received()) == 1
    rows = db.execute("SELECT cache_key, answer::text, hits FROM llm_cache WHERE purpose = 'heal'").fetchall()
    mine = [row for row in rows if "h1.profile-name" in row[1]]  # this test's answer (the session shares the db)
    assert len(mine) == 1 and mine[0][2] >= 1
    seeded = seeded_values(SET_A + SET_B)
    for key, stored, _hits in mine:
        assert request_leaks({"messages": [{"content": key + stored}]}, seeded) == []
    await other.client.aclose()
    await close_pools()


async def test_the_structure_hash_is_the_layout_not_the_people():
    def shape(pages):
        return structure_hash(*(condense_html(p.text) for p in pages[:2]))

    same = {shape(await pages_of(SET_A)), shape(await pages_of(SET_B)), shape(await pages_of(PEOPLE[6:8]))}
    assert len(same) == 1  # other people, other counts of phones and relatives
    assert shape(await pages_of(SET_A, "partial")) not in same and shape(await pages_of(SET_A, "v1")) not in same
    deep = "<div>" * 5000 + "x" + "</div>" * 5000  # deeper than Python's stack: no recursion
    assert structure_hash(deep) != structure_hash("<div>x</div>")


async def test_a_card_field_reading_the_whole_page_is_refused_not_accepted_with_wrong_values(stub, clock):
    # "//..." from a card reads every card's age: valid ages, but each card would get the first one
    paths = [f"/name/{first.lower()}-{last.lower()}" for first, last in SEARCHES]
    pages = await site_pages(SITE, LAYOUT, paths)
    raw = raw_definition()
    heal = heal_list(raw, pages, {})
    heal.proposals.pop("age", None)
    heal.definition["list"]["fields"]["age"] = copy.deepcopy(raw["list"]["fields"]["age"])
    heal.failed = {"age": "no candidate with a clear margin"}
    whole_page = {"xpath": "//tr[@class='result-row']/td[2]/text()", "filters": ["int"]}
    right_age = {"xpath": "./td[2]/text()", "filters": ["int"]}
    await stub.script(answer({"age": whole_page}), answer({"age": right_age}))
    llm = healer(stub, clock)
    healed = await llm.improve(raw, "list", pages, heal)
    assert healed.failed == {} and healed.proposals["age"].spec == right_age
    v1 = load_definitions()[SITE]
    truth = [extract_list(v1, page).candidates for page in await site_pages(SITE, "v1", paths)]
    found = [extract_list(_definition(healed.definition), page).candidates for page in pages]
    assert [[c["age"] for c in page] for page in found] == [[c["age"] for c in page] for page in truth]
    validate(healed.definition, f"{SITE}.yaml")  # the healed definition loads, as a stored version must
    _first, second = await stub.received()
    assert "age: list.fields.age.xpath: starts at the page root" in second["messages"][-1]["content"]
    await llm.client.aclose()


async def test_a_field_reading_the_nodes_of_another_field_of_its_kind_is_refused(stub, clock):
    # relatives read from the AKA section: names, so they look right, but they are the aliases' values
    pages = await pages_of(SET_A)
    raw = raw_definition()
    heal = failing_heal(raw, pages, failed=("relatives",))
    assert "aliases" in heal.proposals  # the heuristics healed the aliases, and they read the AKA section
    stolen = {"xpath": section_xpath("AKA", "/text()")}
    right = {"xpath": section_xpath("Possible relatives", "/*/text()")}
    await stub.script(answer({"relatives": stolen}), answer({"relatives": right}))
    llm = healer(stub, clock)
    healed = await llm.improve(raw, "detail", pages, heal)
    assert healed.failed == {} and healed.proposals["relatives"].spec == right
    await assert_reads_the_truth(healed.definition, pages, SET_A, fields=("relatives", "aliases"))
    _first, second = await assert_nothing_personal_sent(stub, SET_A, 2)
    assert "relatives: reads what aliases reads" in second["messages"][-1]["content"]
    await llm.client.aclose()


async def test_two_proposals_of_one_kind_reading_the_same_nodes_are_both_refused(stub, clock):
    pages = await pages_of(SET_A)
    raw = raw_definition()
    heal = failing_heal(raw, pages, failed=("aliases", "relatives"))
    aka = {"xpath": section_xpath("AKA", "/text()")}
    relatives = {"xpath": section_xpath("Possible relatives", "/*/text()")}
    await stub.script(answer({"aliases": aka, "relatives": aka}), answer({"aliases": aka, "relatives": relatives}))
    llm = healer(stub, clock)
    healed = await llm.improve(raw, "detail", pages, heal)
    assert healed.failed == {}
    assert healed.proposals["aliases"].spec == aka and healed.proposals["relatives"].spec == relatives
    await assert_reads_the_truth(healed.definition, pages, SET_A, fields=("relatives", "aliases"))
    _first, second = await assert_nothing_personal_sent(stub, SET_A, 2)
    asked = second["messages"][-1]["content"]
    assert "aliases: reads what relatives reads; relatives: reads what aliases reads" in asked
    await llm.client.aclose()


def test_a_crawl_s_llm_healer_uses_the_crawler_s_client(said_nothing_yet):
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    crawler = get_crawler(Spider, {"OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    healer_of_crawl = LLMHealer.from_crawler(crawler)
    assert isinstance(healer_of_crawl, LLMHealer) and healer_of_crawl.client is LLMClient.from_crawler(crawler)
    assert LLMHealer.from_crawler(get_crawler(Spider, {"OPENAI_API_KEY": ""})) is None
