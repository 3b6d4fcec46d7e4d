"""Helpers for the LLM heal tests: sandbox broker pages of chosen people, the seeded values to look for, and
the scenario most tests share (fastpeople's structural redesign; full_name, age and phones left to the LLM).

Pages come from the sandbox's own broker apps, served in process over real HTTP and switched to a layout
through ``POST /_sandbox/config`` (set back to the defaults after); what reached the LLM double is
searched for every seeded personal value of the people on those pages, relatives' names included.
"""

from __future__ import annotations

import copy
import re
from importlib import import_module

from aiohttp.test_utils import TestClient, TestServer
from scrapy.http import HtmlResponse

import sandbox.sites  # noqa: F401 - registers the broker apps
from crawler.ai import LLMClient, LocalCache
from crawler.extraction import load_definitions
from crawler.extraction.engine import extract_detail
from crawler.healing.heal import Heal, _definition, heal_detail, missing_fields
from crawler.healing.llm import LLMHealer
from crawler.normalize import phone_e164
from crawler.observability.logs import register_pii
from sandbox.brokers.common import long_street
from sandbox.population import Person, default_population
from sandbox.server import SERVICES, build_app

POPULATION = default_population()
# no defences in the way: these tests read pages, the defences have tests of their own
NO_DEFENCES = {"rate_limit_per_minute": 0}
SITE_NO_DEFENCES = {"truepeople": {"interstitial": False, "burst_limit": 0}}


def listed(site: str) -> list[Person]:
    """The people the site lists, in population order."""
    module = import_module(f"sandbox.brokers.{site}")
    return [p for p in POPULATION.people if module.listing_url(p)]


def full_profiles(site: str) -> list[Person]:
    """Listed people whose profile shows every section (aliases, e-mails, relatives, two or more phones and
    addresses): their pages share one structure, whatever the counts."""
    return [
        p
        for p in listed(site)
        if p.aliases and p.emails and p.relatives and len(p.phones) >= 2 and len(p.addresses) >= 2
    ]


async def detail_pages(site: str, layout: str, people: list[Person]) -> list[HtmlResponse]:
    """The detail pages of ``people`` on ``site`` in ``layout``, as Scrapy responses."""
    module = import_module(f"sandbox.brokers.{site}")
    return await site_pages(site, layout, [module.listing_url(person) for person in people])


async def site_pages(site: str, layout: str, paths: list[str]) -> list[HtmlResponse]:
    """The pages at ``paths`` of ``site`` switched to ``layout`` (then set back to its defaults)."""
    pages = []
    async with TestClient(TestServer(build_app(SERVICES[site], {}))) as client:
        config = {"layout": layout, **NO_DEFENCES, **SITE_NO_DEFENCES.get(site, {})}
        reply = await client.post("/_sandbox/config", json=config)
        assert reply.status == 200, await reply.text()
        try:
            for path in paths:
                reply = await client.get(path, allow_redirects=False)
                assert reply.status == 200, (site, layout, path, reply.status)
                url = str(client.make_url(path))
                pages.append(HtmlResponse(url, body=(await reply.read()), encoding="utf-8"))
        finally:
            reply = await client.post("/_sandbox/config", json={"defaults": True, "reset": True})
            assert reply.status == 200
    return pages


def namesakes(site: str, first: str, last: str) -> list[Person]:
    """Everyone the site lists under that name (the people a result page for it may show)."""
    module = import_module(f"sandbox.brokers.{site}")
    return [p for p in POPULATION.search(first, last) if module.listing_url(p)]


# ---- seeded values -------------------------------------------------------------------------------


def _name_words(person: Person) -> set[str]:
    words = set()
    for value in (person.first_name, person.middle_name, person.last_name, *person.aliases):
        words.update(w.lower() for w in re.split(r"[^A-Za-z']+", value or "") if len(w) >= 2)
    return words


def seeded_values(people: list[Person]) -> dict[str, set[str]]:
    """{kind: values} of the people and their relatives: name words, phone digits, e-mails and their
    local parts, street lines (as written and spelled out)."""
    relatives = [POPULATION.get(r) for p in people for r in p.relatives]
    everyone = [*people, *(r for r in relatives if r is not None)]
    return {
        "name": set().union(*(_name_words(p) for p in everyone)),
        "phone": {phone.number for p in people for phone in p.phones},
        "email": {e.lower() for p in people for e in p.emails}
        | {e.split("@")[0].lower() for p in people for e in p.emails},
        "street": {
            variant.lower()
            for p in people
            for address in p.addresses
            for variant in (address.street, long_street(address.street), " ".join(address.street.split()[1:]))
        },
    }


def leaks(text: str, seeded: dict[str, set[str]], names_as_written: bool = False) -> list[str]:
    """The seeded values ``text`` holds, as "kind 'value'" (synthetic people only, so safe to print).

    Name words are looked for in any case; with ``names_as_written`` only capitalised or in capitals (for
    the prompt's own words: "page" and "will" are English before they are a surname and a nickname).
    """
    lowered = text.lower()
    found = []
    for word in sorted(seeded["name"]):
        forms = (word.capitalize(), word.upper()) if names_as_written else (word,)
        subject = text if names_as_written else lowered
        if any(re.search(rf"(?<![A-Za-z]){re.escape(form)}(?![A-Za-z])", subject) for form in forms):
            found.append(f"name {word!r}")
    digits_only = re.sub(r"\D", "", text)
    for number in sorted(seeded["phone"]):
        # however written: (217) 555-0123, 217.555.0123, 2175550123, or its last seven digits anywhere
        if re.search(r"\D{0,3}".join(number[3:]), text) or number in digits_only:
            found.append(f"phone {number!r}")
    found += [f"e-mail {e!r}" for e in sorted(seeded["email"]) if e in lowered]
    found += [f"street {s!r}" for s in sorted(seeded["street"]) if s in lowered]
    return found


PAGES_START = "\n--- page "


def request_leaks(body: dict, seeded: dict[str, set[str]]) -> list[str]:
    """The seeded values a request to the LLM holds: the pages it shows searched strictly, the prompt's
    own text (system message, instructions, feedback) for names as written."""
    found = []
    for message in body.get("messages") or []:
        content = str(message.get("content") or "")
        prompt, _, pages = content.partition(PAGES_START)
        found += leaks(prompt, seeded, names_as_written=True) + leaks(pages, seeded)
    return found


# ---- the scenario: fastpeople's structural redesign, full_name, age and phones left to the LLM -----------

SITE, LAYOUT = "fastpeople", "structural"
PEOPLE = full_profiles(SITE)
SET_A, SET_B = PEOPLE[:3], PEOPLE[3:6]  # two page sets of the same structure
FAILED = ("full_name", "age", "phones")

PHONES_XPATH = (
    "//dt[normalize-space()='Phones']/following-sibling::dd[preceding-sibling::dt[1][normalize-space()='Phones']]"
    "/a/text()"
)
RIGHT = {
    "full_name": {"css": "h1.profile-name::text"},
    "age": {"xpath": "//dt[normalize-space()='Age']/following-sibling::dd[1]/text()", "filters": ["int"]},
    "phones": {"xpath": PHONES_XPATH},
}
WRONG_PHONES = {**RIGHT, "phones": {"css": "h1.profile-name::text"}}  # the phones spec reading the name
_pages: dict = {}


def answer(fields: dict) -> dict:
    return {"content": {"fields": fields}}


async def pages_of(people, layout: str = LAYOUT) -> list:
    key = (layout, *(p.id for p in people))
    if key not in _pages:
        _pages[key] = await detail_pages(SITE, layout, people)
    return _pages[key]


def raw_definition() -> dict:
    return copy.deepcopy(load_definitions()[SITE].raw)


def failing_heal(raw: dict, pages: list, failed=FAILED) -> Heal:
    """The heuristic heal of the redesign with ``failed`` left unhealed, as when no candidate stands out."""
    broken = missing_fields(raw, "detail", pages)
    assert set(failed) <= set(broken), broken  # the v1 definition really reads nothing of them here
    heal = heal_detail(raw, pages, {}, fields=[f for f in broken if f not in failed])
    heal.failed = dict.fromkeys(failed, "no candidate with a clear margin")  # whatever else the heuristics missed
    assert not set(failed) & set(heal.proposals)
    return heal


def healer(stub, clock, cache=None, **settings) -> LLMHealer:
    values = {"OPENAI_API_KEY": "sk-test-heal", "OPENAI_BASE_URL": stub.url, "LLM_TIMEOUT_SECONDS": "5", **settings}
    client = LLMClient.from_settings(values, cache=cache if cache is not None else LocalCache(), clock=clock)
    assert client is not None
    return LLMHealer(client)


def register_people(people) -> None:
    """As a scan of these people registers them: the client's last check looks for their values too."""
    for person in people:
        register_pii(person.full_name, *person.emails, *(p.number for p in person.phones), person.current.city)


async def assert_nothing_personal_sent(stub, people, calls: int) -> list[dict]:
    """The double received ``calls`` requests, none holding a seeded value, all with labels and tags."""
    received = await stub.received()
    assert len(received) == calls
    seeded = seeded_values(people)
    for body in received:
        assert request_leaks(body, seeded) == []
        user = body["messages"][-1]["content"]
        assert re.search(r"<dt>Phones</dt>", user) and re.search(r"<dt>Age</dt>", user)  # labels
        assert '<h1 class="profile-name">' in user and "<dd>" in user  # tags and classes
        assert "[NAME]" in user and "[PHONE]" in user  # the values' kinds, not the values
    return received


async def assert_reads_the_truth(definition: dict, pages: list, people, fields=FAILED) -> None:
    """On every page the definition reads, for ``fields``, what the v1 definition reads on v1 (the truth)."""
    v1 = load_definitions()[SITE]
    truth = [extract_detail(v1, page) for page in await pages_of(people, "v1")]
    site = _definition(definition)
    for page, expected in zip(pages, truth, strict=True):
        record = extract_detail(site, page)
        for name in fields:
            assert expected[name], name  # the truth has a value to compare with
            if name == "phones":
                assert {phone_e164(p, "US") for p in record[name]} == {phone_e164(p, "US") for p in expected[name]}
            else:
                assert record[name] == expected[name], name


def section_xpath(label: str, tail: str) -> str:
    return (
        f"//dt[normalize-space()='{label}']/following-sibling::dd"
        f"[preceding-sibling::dt[1][normalize-space()='{label}']]{tail}"
    )
