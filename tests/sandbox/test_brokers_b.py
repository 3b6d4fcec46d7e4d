"""The ``spa`` (JavaScript application) and ``radaris`` (POST form) broker sites, against the running sandbox.

Each site's expected listings come from its ``listing_url`` ground truth over the
default population. Config changes (layout, rate limit) are restored after each test.
"""

import json
import re
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp
import pytest
from parsel import Selector
from yarl import URL

from sandbox.brokers import control, radaris, spa
from sandbox.brokers.spa_assets import class_names
from sandbox.population import default_population

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="system Chromium missing: /usr/bin/chromium (apt-get install chromium)"
)
APP = {"X-Requested-With": "app"}
TOS = {"Cookie": f"{spa.TOS_COOKIE}={spa.TOS_VERSION}"}
UNLIMITED = 100_000


def configure(base: str, **config) -> dict:
    request = urllib.request.Request(
        f"{base}/_sandbox/config", data=json.dumps(config).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


def popular(module) -> tuple[str, str, list[str]]:
    """The most common name in the population, and its listing paths on the site (population order)."""
    population = default_population()
    (first, last), _ = Counter((p.first_name, p.last_name) for p in population.people).most_common(1)[0]
    return first, last, [url for p in population.search(first, last) if (url := module.listing_url(p))]


@pytest.fixture
def radaris_url(sandbox):
    """The site without its rate limit (tests make many requests), back to its defaults afterwards."""
    configure(sandbox["radaris"], layout="v1", rate_limit_per_minute=UNLIMITED)
    yield sandbox["radaris"]
    configure(sandbox["radaris"], layout="v1", rate_limit_per_minute=radaris.DEFAULT_RATE_LIMIT)


@pytest.fixture
def spa_url(sandbox):
    configure(sandbox["spa"], layout="v1", rate_limit_per_minute=UNLIMITED)
    yield sandbox["spa"]
    configure(sandbox["spa"], layout="v1", rate_limit_per_minute=spa.DEFAULT_RATE_LIMIT)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # cookies on 127.0.0.1
        yield session


async def get(http, url, status=200, **kwargs) -> Selector:
    async with http.get(url, allow_redirects=False, **kwargs) as response:
        text = await response.text()
        assert response.status == status, text[:300]
        return Selector(text=text)


def test_each_site_lists_a_stable_70_to_85_percent_with_its_own_ids():
    people = default_population().people
    for module in (spa, radaris):
        urls = [module.listing_url(p) for p in people]
        assert 0.70 <= sum(u is not None for u in urls) / len(people) <= 0.85
        assert urls == [module.listing_url(p) for p in people]  # deterministic
        assert len(set(filter(None, urls))) == sum(u is not None for u in urls)
    assert re.fullmatch(r"/person/[A-Za-z0-9]{11}", spa.listing_url(next(p for p in people if spa.listing_url(p))))
    assert {p.id for p in people if spa.listing_url(p)} != {p.id for p in people if radaris.listing_url(p)}


def test_rate_counter_slides_and_tells_how_long_to_wait():
    now = [0.0]
    counter = control.RateCounter(2, clock=lambda: now[0])
    assert counter.hit("a") is None and counter.hit("a") is None and counter.hit("b") is None
    now[0] = 10.2
    assert counter.hit("a") == 50  # the oldest request leaves the window at 60 s
    now[0] = 30.0
    assert counter.counts() == {"a": 2, "b": 1}
    now[0] = 60.0  # the first three have left the window
    assert counter.hit("a") is None and counter.counts() == {"a": 1}


# --- radaris ------------------------------------------------------------------


async def test_radaris_search_needs_the_form_token_and_its_session_cookie(radaris_url, http):
    form = await get(http, f"{radaris_url}/")
    token = form.css("form#search-form[method=post] input[type=hidden][name=_token]::attr(value)").get()
    assert token and http.cookie_jar.filter_cookies(URL(radaris_url)).get(radaris.SESSION_COOKIE)
    fields = {"ff": "John", "fl": "Smith", "fs": "", "fc": ""}
    for data in (fields, {**fields, "_token": "0" * 40}):
        async with http.post(f"{radaris_url}/ng/search", data=data, allow_redirects=False) as response:
            assert response.status == 403 and "Invalid session" in await response.text()
    # the right token without its session
    async with (
        aiohttp.ClientSession() as stranger,
        stranger.post(f"{radaris_url}/ng/search", data={**fields, "_token": token}) as response,
    ):
        assert response.status == 403
    data = {**fields, "_token": token, "fs": "mo", "fc": "St. Louis"}
    async with http.post(f"{radaris_url}/ng/search", data=data, allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/people/John-Smith/MO/St-Louis"
    async with http.post(f"{radaris_url}/ng/search", data={**fields, "_token": token}) as response:
        assert response.status == 200 and str(response.url).endswith("/people/John-Smith")
    async with http.post(f"{radaris_url}/ng/search", data={"ff": "John", "_token": token}) as response:
        assert response.status == 400


async def test_radaris_results_pages_match_the_ground_truth(radaris_url, http):
    first, last, expected = popular(radaris)
    url, seen, pages = f"{radaris_url}/people/{first}-{last}", [], 0
    while True:
        page = await get(http, url)
        pages += 1
        hrefs = page.css("div.card .card-title a::attr(href)").getall()
        seen += hrefs
        next_item = page.css("ul.pagination li.next")
        if pages == 1:
            assert page.css("ul.pagination li.prev.disabled")  # li.disabled alone is not the last-page signal
        if "disabled" in next_item.attrib["class"]:
            assert 1 <= len(hrefs) <= radaris.PAGE_SIZE and not next_item.css("a")
            break
        assert len(hrefs) == radaris.PAGE_SIZE
        url = radaris_url + next_item.css("a::attr(href)").get()
    assert seen == expected and pages == -(-len(expected) // 10) >= 2
    assert page.css("p.results-count::text").get() == f"{len(expected)} people found"
    people = {radaris.listing_url(p): p for p in default_population().people}
    card = page.css("div.card")[-1]
    person = people[card.css(".card-title a::attr(href)").get()]
    info = dict(zip(card.css("dt::text").getall(), card.css("dd::text").getall(), strict=True))
    assert info["Age"] == str(person.age) and info["Lives in"] == f"{person.current.city}, {person.current.state}"
    assert info.get("Also known as", "") == ", ".join(person.aliases)
    assert info.get("Has lived in", "") == "; ".join(radaris.past_cities(person))
    in_state = await get(http, f"{radaris_url}/people/{first.lower()}-{last.lower()}/TX")
    wanted = [u for u in expected if any(a.state == "TX" for a in people[u].addresses)]
    assert in_state.css("div.card .card-title a::attr(href)").getall() == wanted[:10]
    await get(http, f"{radaris_url}/people/{first}-{last}/{pages + 1}", status=404)
    nobody = await get(http, f"{radaris_url}/people/Nobody-Atall/NY/Albany")
    assert nobody.css("p.no-results::text").get() == "No people found" and not nobody.css("div.card")


def sections_v1(page: Selector) -> dict[str, Selector]:
    return {s.css("h2.section-label::text").get(): s.css("ul.section-list") for s in page.css("div.section")}


async def test_radaris_profile_sections_hold_the_persons_values(radaris_url, http):
    population = default_population()
    person = next(p for p in population.people if radaris.listing_url(p) and p.emails and len(p.relatives) > 1)
    page = await get(http, radaris_url + radaris.listing_url(person))
    assert page.css("h1.profile-name::text").get() == radaris.display_name(person)
    assert page.css("div.profile-age::text").get() == f"Age {person.age}"
    sections = sections_v1(page)
    assert list(sections) == radaris.SECTIONS
    phones = [radaris.phone(p.number) for p in person.phones]
    assert sections["Phone Numbers"].css("span.phone::text").getall() == phones
    assert sections["Email Addresses"].css("span.email::text").getall() == person.emails
    assert sections["Address History"].css("span.address::text").getall() == [a.line() for a in person.addresses]
    assert sections["Address History"].css("span.dates::text").get() == f"{person.current.since} - present"
    relatives = [population.get(r) for r in person.relatives]
    assert sections["Possible Relatives"].css("li *::text").getall() == [radaris.display_name(r) for r in relatives]
    listed_relatives = [url for r in relatives if (url := radaris.listing_url(r))]
    assert sections["Possible Relatives"].css("a::attr(href)").getall() == listed_relatives
    associates = {radaris.listing_url(p): p for p in population.people}
    for href in sections["Possible Associates"].css("a::attr(href)").getall():
        assert associates[href].current.city == person.current.city and associates[href].id not in person.relatives
    moved = radaris.listing_url(person).replace(f"/{person.first_name}/", "/Someone/")
    async with http.get(radaris_url + moved, allow_redirects=False) as response:
        assert response.status == 301 and response.headers["Location"] == radaris.listing_url(person)
    await get(http, f"{radaris_url}/p/John/Smith/U000000000", status=404)


async def test_radaris_answers_403_with_retry_after_past_the_limit(radaris_url, http):
    configure(radaris_url, rate_limit_per_minute=5)
    for _ in range(5):
        await get(http, f"{radaris_url}/people/John-Smith")
    async with http.get(f"{radaris_url}/people/John-Smith") as response:
        assert response.status == 403 and "Too many requests" in await response.text()
        assert 1 <= int(response.headers["Retry-After"]) <= 60
    async with http.get(f"{radaris_url}/_sandbox/stats") as response:  # never limited itself
        stats = await response.json()
    assert stats["rate_limited"] >= 1 and stats["clients"]["127.0.0.1"] == 5 and stats["rate_limit_per_minute"] == 5
    assert stats["listed"] == sum(radaris.listing_url(p) is not None for p in default_population().people)
    async with http.post(f"{radaris_url}/_sandbox/config", json={"layout": "v3"}) as response:
        assert response.status == 400


async def test_radaris_v2_layout_differs_but_holds_the_same_values(radaris_url, http):
    first, last, _expected = popular(radaris)
    person = next(p for p in default_population().people if radaris.listing_url(p) and p.emails and p.phones)
    v1 = await get(http, f"{radaris_url}/people/{first}-{last}")
    v1_profile = sections_v1(await get(http, radaris_url + radaris.listing_url(person)))
    configure(radaris_url, layout="v2")
    v2 = await get(http, f"{radaris_url}/people/{first}-{last}")
    assert not v2.css("div.card, ul.pagination") and v2.css("table.rx-table tr.rx-row")
    assert v2.css("tr.rx-row a.rx-link::attr(href)").getall() == v1.css(".card-title a::attr(href)").getall()
    assert v2.css("tr.rx-row td.rx-age::text").getall() == v1.css(".card-title span.age::text").getall()
    assert v2.css("nav.rx-pager li.prev.is-off") and v2.css("nav.rx-pager li.next a")
    profile = await get(http, radaris_url + radaris.listing_url(person))
    assert not profile.css("h2.section-label") and profile.css("h3.rx-heading::text").getall() == radaris.V2_ORDER
    blocks = {b.css("h3.rx-heading::text").get(): b for b in profile.css("section.rx-block")}
    for label, items in v1_profile.items():
        assert blocks[label].css("li.rx-item *::text").getall() == items.css("li *::text").getall()
    assert profile.css("span.rx-age::text").get() == f"{person.age} years old"


# --- spa ----------------------------------------------------------------------


async def test_spa_pages_are_an_empty_shell(spa_url, http):
    person = next(p for p in default_population().people if spa.listing_url(p))
    for path in ("/", f"/search?q={person.first_name}+{person.last_name}", spa.listing_url(person)):
        async with http.get(spa_url + path) as response:
            html = await response.text()
        assert response.status == 200 and "<div id='root'></div>" in html and person.last_name not in html
        assert Selector(text=html).css("script[src='/static/app.js']")
    await get(http, f"{spa_url}/person/AAAAAAAAAAA", status=404)
    async with http.get(f"{spa_url}/static/app.js") as response:
        script = await response.text()
    assert response.content_type == "application/javascript" and "I Agree" in script and "X-Requested-With" in script


async def test_spa_api_refuses_plain_clients(spa_url, http):
    url = f"{spa_url}/api/search?q=John+Smith"
    for headers in ({}, APP, TOS):
        async with http.get(url, headers=headers) as response:
            assert response.status == 403
    async with http.get(url, headers={**APP, **TOS}) as response:
        assert response.status == 200 and (await response.json())["total"] > 0


async def test_spa_api_pages_by_cursor(spa_url, http):
    first, last, expected = popular(spa)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"q": f"{first} {last}", **({"cursor": cursor} if cursor else {})}
        async with http.get(f"{spa_url}/api/search", params=params, headers={**APP, **TOS}) as response:
            data = await response.json()
        pages += 1
        assert data["total"] == len(expected) and len(data["results"]) == min(10, len(expected) - len(seen))
        seen += [r["url"] for r in data["results"]]
        cursor = data["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and pages == -(-len(expected) // 10) >= 2
    async with http.get(
        f"{spa_url}/api/search", params={"q": "Mary Johnson", "cursor": cursor or "x"}, headers={**APP, **TOS}
    ) as response:
        assert response.status == 400
    async with http.get(
        f"{spa_url}/api/search", params={"q": f"{first} {last}", "loc": "Austin, TX"}, headers={**APP, **TOS}
    ) as response:
        people = {spa.listing_url(p): p for p in default_population().people}
        urls = [r["url"] for r in (await response.json())["results"]]
    assert urls == [u for u in expected if any(a.city == "Austin" for a in people[u].addresses)][:10]


async def test_spa_teasers_are_masked_and_the_profile_is_full(spa_url, http):
    first, last, _ = popular(spa)
    async with http.get(f"{spa_url}/api/search", params={"q": f"{first} {last}"}, headers={**APP, **TOS}) as response:
        body = await response.text()
    people = {spa.listing_url(p): p for p in default_population().people}
    for teaser in json.loads(body)["results"]:
        person = people[teaser["url"]]
        assert teaser["age_range"] == f"in their {person.age // 10 * 10}s"
        assert teaser["phone"] == spa.phone(person.phones[0].number)[:-2] + "XX"
        assert re.fullmatch(r"\(\d{3}\) 555-01XX", teaser["phone"])
        if person.emails:
            assert teaser["email"] == f"{person.emails[0][0]}***@{person.emails[0].split('@')[1]}"
        assert all(p.number[-4:] not in body for p in person.phones) and all(e not in body for e in person.emails)
    async with http.get(f"{spa_url}/api/person/{teaser['id']}", headers={**APP, **TOS}) as response:
        profile = await response.json()
    assert profile["name"] == spa.display_name(person) and profile["age"] == person.age
    assert [p["number"] for p in profile["phones"]] == [spa.phone(p.number) for p in person.phones]
    assert profile["emails"] == person.emails
    assert [a["full"] for a in profile["addresses"]] == [a.line() for a in person.addresses]
    async with http.get(f"{spa_url}/api/person/{teaser['id']}", headers=APP) as response:
        assert response.status == 403


async def test_spa_script_changes_class_names_with_the_layout(spa_url, http):
    async with http.get(f"{spa_url}/static/app.js") as response:
        v1 = await response.text()
    configure(spa_url, layout="v2")
    async with http.get(f"{spa_url}/static/app.js") as response:
        v2 = await response.text()
    assert v1 != v2 and "data-qa-result" in v2 and '"table"' in v2
    for name, hashed in class_names("v1").items():
        assert hashed in v1 and hashed not in v2 and class_names("v2")[name] in v2


@needs_chromium
async def test_spa_in_chromium_accepts_the_terms_and_renders_results(spa_url):
    from playwright.async_api import async_playwright

    first, last, expected = popular(spa)
    people = {spa.listing_url(p): p for p in default_population().people}
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{spa_url}/search?q={first}+{last}")
            await page.get_by_role("button", name="I Agree").click()
            await page.wait_for_selector("[data-qa-result]")
            hrefs = await page.eval_on_selector_all("[data-qa-name]", "els => els.map(e => e.getAttribute('href'))")
            assert hrefs == expected[:10]
            ages = await page.locator("[data-qa-age]").all_inner_texts()
            assert ages == [f"in their {people[h].age // 10 * 10}s" for h in hrefs]
            assert (await page.locator("[data-qa-name]").first.get_attribute("class")).startswith("css-")
            await page.click("[data-qa-load-more]")
            await page.wait_for_function("document.querySelectorAll('[data-qa-result]').length > 10")
            await page.goto(spa_url + expected[0])  # accepted once: no modal on the next page
            await page.wait_for_selector("[data-qa-person-name]")
            assert await page.locator("[data-qa-tos-modal]").count() == 0
            person = people[expected[0]]
            phones = await page.locator("[data-qa-phone]").all_inner_texts()
            assert phones == [spa.phone(p.number) for p in person.phones]
            assert await page.inner_text("[data-qa-person-age]") == f"Age {person.age}"
            configure(spa_url, layout="v2")  # the redesign: a table, other class names, the same data-qa values
            await page.goto(f"{spa_url}/search?q={first}+{last}")
            await page.wait_for_selector("table [data-qa-result]")
            v2_hrefs = await page.eval_on_selector_all("[data-qa-name]", "els => els.map(e => e.getAttribute('href'))")
            assert v2_hrefs == hrefs and await page.locator("[data-qa-age]").all_inner_texts() == ages
            assert not (await page.locator("[data-qa-name]").first.get_attribute("class")).startswith("css-")
            assert errors == []
        finally:
            await browser.close()
