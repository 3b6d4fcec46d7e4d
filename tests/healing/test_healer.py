"""The crawl's healer on real sandbox pages: learn on v1, hold the pages a redesign breaks, heal when
HEAL_MIN_PAGES are held, hand them back; suspects go back as they were; the memory reaches PostgreSQL."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from scrapy.http import HtmlResponse
from scrapy.settings import Settings

from crawler.extraction import extract_detail, load_definitions
from crawler.healing.healer import Healer
from sandbox.population import default_population, ground_truth
from support import http

SITE = "fastpeople"


def detail_pages(base: str, count: int, layout: str, skip: int = 0) -> list[HtmlResponse]:
    assert http(f"{base}/_sandbox/config", data={"layout": layout}).status == 200
    paths = [ground_truth(p)[SITE] for p in default_population().people if SITE in ground_truth(p)]
    pages = []
    for path in paths[skip : skip + count]:
        reply = http(base + path)
        assert reply.status == 200
        pages.append(HtmlResponse(base + path, body=reply.body, encoding="utf-8"))
    return pages


@pytest.fixture
def pages(sandbox):
    base = sandbox[SITE]
    try:
        yield {
            "v1": detail_pages(base, 40, "v1"),
            "structural": detail_pages(base, 4, "structural", skip=40),
            "v1_more": detail_pages(base, 2, "v1", skip=44),
        }
    finally:
        http(f"{base}/_sandbox/config", data={"layout": "v1"})


def healer_for(database_url: str, **overrides) -> Healer:
    settings = Settings()
    settings.setmodule("crawler.settings")
    settings.update({"DATABASE_URL": database_url, **overrides})
    return Healer(settings)


def test_pages_a_redesign_breaks_are_held_healed_and_handed_back(pages, own_database_url):
    definition = load_definitions()[SITE]

    async def run():
        healer = healer_for(own_database_url)
        (current,) = (await healer.open({SITE: definition})).values()
        assert current.sha256 == definition.sha256  # no version yet: the YAML
        read = 0
        for response in pages["v1"]:  # a page of a person without relatives waits as a suspect a while
            read += healer.read_detail(current, response) is not None
            settled = await healer.settle(SITE, "detail")
            assert settled.version is None  # v1: never a heal
            read += len(settled.reread)
        read += len((await healer.settle(SITE, "detail", final=True)).reread)
        assert read == len(pages["v1"])  # every v1 page came back, held or not
        held = [healer.read_detail(current, r) for r in pages["structural"][:3]]
        assert held == [None, None, None]
        settled = await healer.settle(SITE, "detail")
        await healer.close()
        return settled

    settled = asyncio.run(run())
    assert settled.version is not None and settled.version.status == "active"
    assert settled.version.origin == "heuristic" and settled.version.base_sha256 == definition.sha256
    assert all(any(r is page for r in settled.reread) for page in pages["structural"][:3])
    record = extract_detail(settled.definition, pages["structural"][3])  # a page the heal never saw
    assert record["full_name"] and record["phones"] and record["addresses"]
    with psycopg.connect(own_database_url) as db:
        fields = {f for (f,) in db.execute("SELECT field FROM heal_memory WHERE site = %s", (SITE,))}
        (changes,) = db.execute("SELECT changes FROM site_definition_versions").fetchone()
    assert {"full_name", "phones", "addresses"} <= fields
    assert changes and all(key.startswith("detail.fields.") for key in changes)


def test_a_second_crawl_reads_with_the_active_version(pages, own_database_url):
    definition = load_definitions()[SITE]

    async def first():
        healer = healer_for(own_database_url)
        current = (await healer.open({SITE: definition}))[SITE]
        for response in pages["v1"]:
            healer.read_detail(current, response)
        for response in pages["structural"][:3]:
            healer.read_detail(current, response)
        return (await healer.settle(SITE, "detail")).version

    async def second():
        healer = healer_for(own_database_url)
        return (await healer.open({SITE: definition}))[SITE], healer

    version = asyncio.run(first())
    current, healer = asyncio.run(second())
    assert current.sha256 == version.sha256 and healer.version_of(SITE).id == version.id
    assert extract_detail(current, pages["structural"][3])["full_name"]


def test_a_page_missing_a_usual_field_waits_as_a_suspect_and_goes_back_as_it_was(pages, own_database_url):
    definition = load_definitions()[SITE]
    v1 = pages["v1"]
    # this person "has no address" (every other person has one)
    body = v1[0].text.replace("current_address_section", "x").replace("previous-address-links", "y")
    odd = HtmlResponse(v1[0].url, body=body.encode(), encoding="utf-8")

    async def run():
        healer = healer_for(own_database_url)
        current = (await healer.open({SITE: definition}))[SITE]
        for response in v1[1:]:
            healer.read_detail(current, response)
        await healer.settle(SITE, "detail", final=True)  # the suspects of the history go back
        assert healer.read_detail(current, odd) is None  # a suspect
        waiting = await healer.settle(SITE, "detail")
        assert healer.read_detail(current, pages["v1_more"][0]) is not None  # addresses read again
        back = await healer.settle(SITE, "detail")
        return waiting, back

    waiting, back = asyncio.run(run())
    assert waiting.reread == [] and waiting.version is None
    assert back.reread == [odd] and back.version is None


def test_healing_off_reads_as_before(pages, own_database_url):
    definition = load_definitions()[SITE]
    healer = healer_for(own_database_url, HEAL_ENABLED=False)
    assert healer.read_detail(definition, pages["structural"][0]) == extract_detail(definition, pages["structural"][0])
