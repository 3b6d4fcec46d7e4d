"""Each broker's opt-out over HTTP, against a sandbox of this module's own (its removals would hide
listings other tests look for) writing its e-mail into a Maildir of its own.

Time: processing delays are read from the site's config when a listing is looked at, so a test submits
with a long delay (the listing must still show), then shortens it (the listing must be gone at once):
nothing waits on a guess. Only the link expiry waits, until this process's monotonic clock (the server's
too: one machine) is past the link's lifetime after the POST that issued it answered.
"""

from __future__ import annotations

import asyncio
import mailbox
import re
import time
from pathlib import Path

import aiohttp
import pytest
from parsel import Selector

from sandbox.brokers import fastpeople, radaris, spa, thatsthem, truepeople
from sandbox.launch import running
from sandbox.population import default_population

pytestmark = pytest.mark.e2e

SITES = {"fastpeople": fastpeople, "truepeople": truepeople, "spa": spa, "radaris": radaris, "thatsthem": thatsthem}
PEOPLE = default_population().people
APP = {"X-Requested-With": "app"}
LONG = 3600
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


@pytest.fixture(scope="module")
def own_sandbox(tmp_path_factory):
    maildir = tmp_path_factory.mktemp("optouts") / "mail"  # created by the first delivery
    services = ",".join([*SITES, "mail"])  # the mail API delivers in the sandbox: thatsthem's inbox is there
    with running(["--free-ports", "--only", services, "--maildir", str(maildir)], timeout=60) as urls:
        yield urls, maildir


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:  # cookies on 127.0.0.1
        yield session


@pytest.fixture
async def sites(own_sandbox, http):
    urls, _ = own_sandbox
    for name in SITES:
        await configure(http, urls[name], defaults=True, reset=True, rate_limit_per_minute=0)
    await configure(http, urls["truepeople"], interstitial=False, burst_limit=0)
    yield urls
    for name in SITES:
        await configure(http, urls[name], defaults=True, reset=True)


async def configure(http, base: str, **changes) -> dict:
    async with http.post(f"{base}/_sandbox/config", json=changes) as response:
        body = await response.json()
        assert response.status == 200, body
        return body


async def optouts(http, base: str) -> dict:
    async with http.get(f"{base}/__optouts") as response:
        assert response.status == 200
        return await response.json()


async def get(http, url: str, status: int = 200, **kwargs) -> Selector:
    async with http.get(url, allow_redirects=False, **kwargs) as response:
        text = await response.text()
        assert response.status == status, text[:300]
        return Selector(text=text)


async def post(http, url: str, data: dict, status: int = 200) -> Selector:
    async with http.post(url, data=data, allow_redirects=False) as response:
        text = await response.text()
        assert response.status == status, text[:300]
        return Selector(text=text)


def listed(module, count: int = 2) -> list:
    return [p for p in PEOPLE if module.listing_url(p)][:count]


def mail_to(maildir: Path, address: str) -> mailbox.MaildirMessage:
    """The one message delivered to ``address`` (the broker writes it before its page answers)."""
    found = [m for m in mailbox.Maildir(maildir, create=False) if m["To"] == address]
    assert len(found) == 1, f"{len(found)} messages to {address}"
    return found[0]


async def fastpeople_submit(http, base: str, url: str, email: str) -> Selector:
    form = await get(http, f"{base}/removal")
    token = form.css("form#removal input[name=csrf_token]::attr(value)").get()
    return await post(http, f"{base}/removal", {"csrf_token": token, "url": url, "email": email})


async def test_fastpeople_form_with_csrf_then_an_emailed_link(sites, own_sandbox, http):
    base, maildir = sites["fastpeople"], own_sandbox[1]
    person, expiring = listed(fastpeople)
    path = fastpeople.listing_url(person)
    await configure(http, base, optout_processing_seconds=LONG)
    form = await get(http, f"{base}/removal")
    token = form.css("form#removal input[name=csrf_token]::attr(value)").get()
    assert form.css("form#removal input[name=url]") and form.css("form#removal input[name=email]")
    async with aiohttp.ClientSession() as stranger:  # no session cookie: the token alone is refused
        page = await post(
            stranger, f"{base}/removal", {"csrf_token": token, "url": base + path, "email": "a@b.org"}, 403
        )
        assert "session has expired" in page.get()
    page = await post(http, f"{base}/removal", {"csrf_token": "forged", "url": base + path, "email": "a@b.org"}, 403)
    page = await post(
        http, f"{base}/removal", {"csrf_token": token, "url": f"{base}/john-doe_id_G1", "email": "a@b.org"}, 400
    )
    assert "not the address of a record" in page.css("p.error::text").get()
    assert (await optouts(http, base))["submissions"] == {}

    page = await post(
        http, f"{base}/removal", {"csrf_token": token, "url": base + path, "email": "optout+fp1@example.org"}
    )
    assert page.css("h1::text").get() == "Check your e-mail"
    report = await optouts(http, base)
    assert report["submissions"] == {path: 1} and report["pending"] == [path] and report["confirmed"] == []
    message = mail_to(maildir, "optout+fp1@example.org")
    assert "removals@fastpeople.test" in message["From"]
    link = re.search(r"http://\S+/removal/confirm/\S+", message.get_payload(decode=True).decode()).group(0)
    assert link.startswith(base)
    await get(http, base + path)  # still listed: nothing confirmed yet
    page = await get(http, link)
    assert "has been confirmed" in page.css("p.removal-confirmed::text").get()
    assert "already been confirmed" in (await get(http, link)).get()  # opened twice: nothing new
    report = await optouts(http, base)
    assert report["confirmed"] == [path] and report["pending"] == [path] and report["removed"] == []
    await get(http, base + path)
    await configure(http, base, optout_processing_seconds=0)
    gone = await get(http, base + path)
    assert "We could not find the page you were looking for" in gone.get()  # as an unknown id answers
    results = await get(http, f"{base}/name/{person.first_name.lower()}-{person.last_name.lower()}")
    assert path not in results.css("div.card::attr(data-link)").getall()
    assert (await optouts(http, base))["removed"] == [path]

    # a link opened after optout_link_seconds: an "expired" page, nothing confirmed or removed
    await configure(http, base, optout_link_seconds=0.3)
    other = fastpeople.listing_url(expiring)
    await fastpeople_submit(http, base, base + other, "optout+fp2@example.org")
    answered = time.monotonic()
    message = mail_to(maildir, "optout+fp2@example.org")
    link = re.search(r"http://\S+", message.get_payload(decode=True).decode())[0]
    # the server issued the link before ``answered``: once this clock is past answered + 0.3, so is the link
    await asyncio.sleep(answered + 0.31 - time.monotonic())
    assert "has expired" in (await get(http, link)).get()
    report = await optouts(http, base)
    assert report["confirmed"] == [path] and report["submissions"] == {path: 1, other: 1}
    await get(http, base + other)
    assert "not valid" in (await get(http, f"{base}/removal/confirm/nonsense", 404)).get()


async def test_truepeople_refuses_a_form_without_a_solved_captcha(sites, http):
    base = sites["truepeople"]
    solved_in_page, by_hand = listed(truepeople)
    await configure(http, base, optout_processing_seconds=LONG)
    form = await get(http, f"{base}/removal")
    assert form.css("form#removal div.g-recaptcha[data-sitekey]")
    assert form.css("form#removal [name=g-recaptcha-response]")
    url = base + truepeople.listing_url(solved_in_page)
    for response in ("", "solved-forged"):
        page = await post(
            http, f"{base}/removal", {"url": url, "email": "a@b.org", "g-recaptcha-response": response}, 400
        )
        assert "Please complete the CAPTCHA" in page.css("p.error::text").get()
    assert (await optouts(http, base))["submissions"] == {}

    # the person solves it in the page (a token of the sandbox's), or does it all by hand
    async with http.post(f"{base}/_sandbox/optouts/solve") as response:
        token = (await response.json())["token"]
    page = await post(http, f"{base}/removal", {"url": url, "email": "a@b.org", "g-recaptcha-response": token})
    assert "removal request has been received" in page.get()
    await post(http, f"{base}/removal", {"url": url, "email": "a@b.org", "g-recaptcha-response": token}, 400)  # used
    async with http.post(f"{base}/_sandbox/optouts/submit", json={"url": truepeople.listing_url(by_hand)}) as response:
        assert response.status == 200 and (await response.json())["state"] == "processing"
    async with http.post(f"{base}/_sandbox/optouts/submit", json={"url": "/find/person/nobody"}) as response:
        assert response.status == 404
    paths = sorted(truepeople.listing_url(p) for p in (solved_in_page, by_hand))
    report = await optouts(http, base)
    assert report["submissions"] == dict.fromkeys(paths, 1) and report["pending"] == paths
    await get(http, base + paths[0])
    await configure(http, base, optout_processing_seconds=0)
    for path in paths:
        assert "no longer available" in (await get(http, base + path, 404)).get()  # as an unknown id answers
    name = f"{solved_in_page.first_name} {solved_in_page.last_name}"
    results = await get(http, f"{base}/results", params={"name": name})
    assert (
        truepeople.listing_url(solved_in_page) not in results.css("[data-detail-link]::attr(data-detail-link)").getall()
    )


async def test_spa_optout_api_searches_selects_and_submits(sites, http):
    base = sites["spa"]
    person = listed(spa, 1)[0]
    path = spa.listing_url(person)
    pid = path.rsplit("/", 1)[1]
    await configure(http, base, optout_processing_seconds=LONG)
    assert "data-qa-optout-submit" in await (await http.get(f"{base}/static/app.js")).text()
    await get(http, f"{base}/optout")
    query = {"name": f"{person.first_name} {person.last_name}", "state": person.current.state}
    async with http.get(f"{base}/api/optout/search", params=query) as response:
        assert response.status == 403  # not the app
    async with http.get(f"{base}/api/optout/search", params=query, headers=APP) as response:
        found = await response.json()
    assert path in [r["url"] for r in found["results"]]
    async with http.post(f"{base}/api/optout", json={"id": pid, "email": "not an address"}, headers=APP) as response:
        assert response.status == 400
    async with http.post(f"{base}/api/optout", json={"id": pid, "email": "optout+s@example.org"}, headers=APP) as r:
        assert r.status == 200 and (await r.json())["status"] == "received"
    assert (await optouts(http, base))["submissions"] == {path: 1}
    await configure(http, base, optout_processing_seconds=0)
    cookie = {"Cookie": f"{spa.TOS_COOKIE}={spa.TOS_VERSION}"}
    async with http.get(f"{base}/api/person/{pid}", headers={**APP, **cookie}) as response:
        assert response.status == 404 and (await response.json())["error"] == "Not found"
    await get(http, base + path, 404)
    async with http.get(f"{base}/api/optout/search", params=query, headers=APP) as response:
        assert path not in [r["url"] for r in (await response.json())["results"]]
    assert (await optouts(http, base))["removed"] == [path]


async def test_radaris_optout_moved_and_some_listings_come_back(sites, http):
    base = sites["radaris"]
    person = listed(radaris, 1)[0]
    path = radaris.listing_url(person)
    await configure(http, base, optout_processing_seconds=LONG, relist_share=1.0, relist_seconds=LONG)
    await get(http, f"{base}/control/privacy", 404)
    link = (await get(http, f"{base}/privacy")).css("a#optout::attr(href)").get()
    form = await get(http, base + link)
    token = form.css("form#optout-form input[name=_token]::attr(value)").get()
    fields = {"profile_url": base + path, "email": "optout+r@example.org"}
    await post(http, base + link, {**fields, "_token": "forged"}, 403)
    page = await post(http, base + link, {**fields, "_token": token})
    assert "Your request has been received" in page.get()
    assert (await optouts(http, base))["pending"] == [path]
    await get(http, base + path)
    await configure(http, base, optout_processing_seconds=0)
    assert (await get(http, base + path, 404)).css("p.error::text").get() == "Profile not found"
    assert (await optouts(http, base))["removed"] == [path]

    await configure(http, base, relist_seconds=0)  # the data refresh: the same URL again
    await get(http, base + path)
    report = await optouts(http, base)
    assert report["relisted"] == [path] and report["removed"] == []
    await post(http, base + link, {**fields, "_token": token})  # a new request: removed for good
    await get(http, base + path, 404)
    report = await optouts(http, base)
    assert report["submissions"] == {path: 2} and report["removed"] == [path] and report["relisted"] == [path]
    await configure(http, base, relist_share=0)
    async with http.post(f"{base}/_sandbox/config", json={"relist_share": 1.5}) as response:
        assert response.status == 400


async def test_thatsthem_optout_page_and_reset(sites, http):
    base = sites["thatsthem"]
    page = await get(http, f"{base}/optout")
    assert thatsthem.PRIVACY_ADDRESS in page.css("p.optout-info a::text").get()
    person = listed(thatsthem, 1)[0]
    path = thatsthem.listing_url(person)
    before = (await (await http.get(f"{base}/_sandbox/stats")).json())["counters"].get("requests", 0)
    async with http.post(f"{base}/_sandbox/optouts/submit", json={"url": base + path}) as response:
        assert response.status == 200
    await configure(http, base, optout_processing_seconds=0)
    await get(http, base + path, 404)
    assert (await optouts(http, base))["removed"] == [path]
    after = (await (await http.get(f"{base}/_sandbox/stats")).json())["counters"].get("requests", 0)
    assert after == before + 1  # the detail page only: /__optouts is never counted
    await configure(http, base, reset=True)
    assert (await optouts(http, base)) == {
        "site": "thatsthem",
        "submissions": {},
        "confirmed": [],
        "removed": [],
        "relisted": [],
        "pending": [],
        "unmatched": 0,
    }
    await get(http, base + path)


async def test_thatsthem_reads_letters_sent_through_the_sandbox_mail_api(sites, own_sandbox, http):
    base, api = sites["thatsthem"], sites["mail"]
    person = listed(thatsthem, 2)[1]
    path = thatsthem.listing_url(person)
    await configure(http, api, reset=True, client_id="h1", client_secret="s", min_interval_seconds=0.001)
    await configure(http, base, optout_processing_seconds=LONG)
    async with http.post(f"{api}/auth/token", json={"client_id": "h1", "client_secret": "s"}) as response:
        bearer = {"Authorization": f"Bearer {(await response.json())['access_token']}"}
    letters = [f"Please delete {base}{path} - reference r2", "Please delete all my data."]
    for body in letters:
        letter = {"to": thatsthem.PRIVACY_ADDRESS, "subject": "Deletion request r2", "body": body}
        async with http.post(f"{api}/send-email", json=letter, headers=bearer) as response:
            assert response.status == 202, await response.text()
    report = await optouts(http, base)
    assert report["submissions"] == {path: 1} and report["unmatched"] == 1 and report["pending"] == [path]
    await configure(http, base, optout_processing_seconds=0)
    assert (await get(http, base + path, 404)).css("h1::text").get() == "Record not found"
    assert not own_sandbox[1].exists() or not [m for m in mailbox.Maildir(own_sandbox[1]) if "thatsthem" in m["To"]]


@pytest.mark.skipif(not CHROMIUM.exists(), reason="system Chromium missing: /usr/bin/chromium")
async def test_spa_optout_in_chromium(sites, http):
    from playwright.async_api import async_playwright

    base = sites["spa"]
    person = listed(spa, 1)[0]
    path = spa.listing_url(person)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(f"{base}/optout")  # the opt-out asks for no terms
            await page.fill("[data-qa-optout-name]", f"{person.first_name} {person.last_name}")
            await page.fill("[data-qa-optout-state]", person.current.state)
            await page.click("[data-qa-optout-find]")
            await page.click(f"[data-qa-optout-result][data-url='{path}'] [data-qa-optout-select]")
            await page.fill("[data-qa-optout-email]", "optout+b@example.org")
            await page.click("[data-qa-optout-submit]")
            await page.wait_for_selector("[data-qa-optout-done]")
            assert errors == []
        finally:
            await browser.close()
    assert (await optouts(http, base))["submissions"] == {path: 1}
