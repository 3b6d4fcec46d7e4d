"""Re-capture the saved pages the site-definition fixture tests read (truepeople, radaris, spa).

    .venv/bin/python -m tests.sites.capture          # starts the sandbox on free ports, writes tests/sites/fixtures/

The pages come from the sandbox (deterministic population, layout v1); spa pages are the DOM
as Chromium rendered it (the terms modal accepted), plus the API's own JSON. Run it only when
the sandbox's pages change on purpose, then review the diff of the fixtures and the tests.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from sandbox.launch import running
from sandbox.population import default_population, ground_truth

FIXTURES = Path(__file__).resolve().parent / "fixtures"
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) fixture-capture"
# People the fixtures show: a namesake-rich name (pagination), a deceased person, an empty search.
TARGET = "P000004"  # John L. Smith, Chicago IL: on every site, 25+ namesakes
DECEASED = "P000031"  # David Smith, Seattle WA: marked Deceased on truepeople


def opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def fetch(client, url: str, data: dict | None = None) -> tuple[int, str, str]:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers={"User-Agent": USER_AGENT})
    try:
        with client.open(request, timeout=10) as response:
            return response.status, response.geturl(), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, url, error.read().decode()


def save(site: str, name: str, text: str) -> None:
    path = FIXTURES / site / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path.relative_to(FIXTURES.parent.parent.parent)} ({len(text)} chars)")


def capture_truepeople(base: str) -> None:
    client, population = opener(), default_population()
    status, _, page = fetch(client, f"{base}/results?name=John+Smith")
    assert status == 503, status
    save("truepeople", "interstitial.html", page)
    for number in (1, 3):
        _, _, page = fetch(client, f"{base}/results?name=John+Smith&page={number}")
        save("truepeople", f"results_{number}.html", page)
    _, _, page = fetch(client, f"{base}/results?name=Zyxw+Qqqq&citystatezip=IL")
    save("truepeople", "results_empty.html", page)
    for key, pid in (("detail", TARGET), ("detail_deceased", DECEASED)):
        _, _, page = fetch(client, base + ground_truth(population.get(pid))["truepeople"])
        save("truepeople", f"{key}.html", page)
    _, _, page = fetch(client, f"{base}/InternalCaptcha?returnUrl=%2Fresults%3Fname%3DJohn%2BSmith")
    save("truepeople", "captcha.html", page)


def capture_radaris(base: str) -> None:
    client, population = opener(), default_population()
    _, _, form = fetch(client, base + "/")
    save("radaris", "form.html", form)
    token = form.split("name='_token' value='", 1)[1].split("'", 1)[0]
    _, url, page = fetch(
        client, f"{base}/ng/search", {"_token": token, "ff": "John", "fl": "Smith", "fs": "", "fc": ""}
    )
    assert url.endswith("/people/John-Smith"), url
    save("radaris", "results_1.html", page)
    _, _, page = fetch(client, f"{base}/people/John-Smith/3")
    save("radaris", "results_3.html", page)
    _, _, page = fetch(client, f"{base}/people/Zyxw-Qqqq")
    save("radaris", "results_empty.html", page)
    _, _, page = fetch(client, base + ground_truth(population.get(TARGET))["radaris"])
    save("radaris", "profile.html", page)


async def capture_spa(base: str) -> None:
    from playwright.async_api import async_playwright

    population = default_population()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = await browser.new_page()
        await page.goto(f"{base}/search?q=John+Smith&loc=")
        await page.click("[data-qa-tos-accept]")
        await page.wait_for_selector("[data-qa-result]")
        save("spa", "search.html", await page.content())
        for _ in range(5):  # every cursor page, as the spider's page action does
            if await page.is_hidden("[data-qa-load-more]"):
                break
            await page.click("[data-qa-load-more]")
            await page.wait_for_function("!document.querySelector('[data-qa-load-more]').disabled")
        save("spa", "search_all.html", await page.content())
        await page.goto(f"{base}/search?q=Zyxw+Qqqq&loc=IL")
        await page.wait_for_selector("[data-qa-empty]")
        save("spa", "search_empty.html", await page.content())
        path = ground_truth(population.get(TARGET))["spa"]
        async with page.expect_response(lambda r: "/api/person/" in r.url) as api:
            await page.goto(base + path)
        save("spa", "person_api.json", json.dumps(await (await api.value).json(), indent=1))
        await page.wait_for_selector("[data-qa-person]")
        save("spa", "person.html", await page.content())
        # layout v2 (a redesign: other hashed classes, a table, reordered sections): same data-qa-* attributes
        request = urllib.request.Request(
            f"{base}/_sandbox/config",
            data=json.dumps({"layout": "v2"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        await asyncio.to_thread(lambda: urllib.request.urlopen(request, timeout=10).close())
        await page.goto(f"{base}/search?q=John+Smith&loc=IL")
        await page.wait_for_selector("[data-qa-result]")
        save("spa", "search_v2.html", await page.content())
        await page.goto(base + path)
        await page.wait_for_selector("[data-qa-person]")
        save("spa", "person_v2.html", await page.content())
        await browser.close()


def main() -> None:
    with running(["--free-ports", "--only", "truepeople,radaris,spa"], timeout=60) as urls:
        capture_truepeople(urls["truepeople"])
        capture_radaris(urls["radaris"])
        asyncio.run(capture_spa(urls["spa"]))


if __name__ == "__main__":
    main()
