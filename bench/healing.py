"""Self-healing extraction, measured on the sandbox's redesigned layouts (issue 15, "Measured").

For each site and layout (v1, v2, structural, jsonld, partial), detail and result pages: field accuracy
against the ground truth (what the v1 definition reads on v1) with healing off, with the heuristics
only, and with the heuristics plus the LLM ("n/a" without a key); wrong values are counted apart from
missing ones (a wrong value is worse: it can accept the wrong person); the pages needed before a heal is
verified; and the time the crawl's own path adds per page while nothing is broken (``Healer.read_detail``
against a plain extract, v1 pages: once the memory has its prints, and while it learns).

The selector memory is learned from ``--learn`` v1 pages, a heal sees the first ``--heal`` pages of the
new layout, and accuracy is measured on all ``--pages`` pages (tools/healing_accuracy.py: normalised
values, list fields as sets). The browser-rendered site (spa) is rendered with Chromium (playwright).

    .venv/bin/python bench/healing.py [--sites fastpeople,...] [--kinds detail,list] [--no-llm] [-v]
        [--offset N]   other people (from the N-th of the population): the heuristics must not fit one set
        [--save DIR]   keep every page fetched (tests/healing/fixtures were made so)

The LLM column uses crawler.healing.llm.LLMHealer with OPENAI_API_KEY / OPENAI_BASE_URL / OPENAI_MODEL
from the environment (a real server, or the sandbox's scripted test double); "n/a" without a key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import http.cookiejar
import importlib.util
import json
import os
import statistics
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scrapy.http import HtmlResponse

from crawler.extraction import load_definitions
from crawler.extraction.engine import extract_detail, extract_list
from crawler.extraction.templates import render, render_params
from crawler.healing import heal as healing
from crawler.healing.memory import SelectorMemory
from sandbox.launch import running
from sandbox.population import default_population, ground_truth
from tools.healing_accuracy import Score, compare, learn, records

SITES = ("fastpeople", "truepeople", "radaris", "thatsthem", "spa")
LAYOUTS = ("v1", "v2", "structural", "jsonld", "partial")
BROWSER_SITES = ("spa",)
SAVE_TO: Path | None = None
OFFSET = 0  # --offset: people from further down the population (other values, same layouts)


# ---- pages ---------------------------------------------------------------------------------------


class Fetcher:
    """Plain HTTP with a cookie jar (sessions, CSRF cookies); Chromium for browser-rendered sites."""

    def __init__(self, browser: bool = False):
        self.client = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self.browser = browser
        self._loop = self._playwright = self._chromium = self._context = None

    def get(self, url: str) -> HtmlResponse:
        if self.browser:
            return self._loop.run_until_complete(self._render(url))
        body = b""
        for _ in range(5):
            request = urllib.request.Request(url, headers={"User-Agent": "Mozilla/5.0 (healing bench)"})
            try:
                with self.client.open(request, timeout=15) as answer:
                    body, url = answer.read(), answer.geturl()
                    break
            except urllib.error.HTTPError as error:
                body = error.read()
                if error.code not in (429, 503):
                    break
                time.sleep(0.5)
        return HtmlResponse(url, body=body, encoding="utf-8")

    def get_many(self, urls: list[str]) -> list[HtmlResponse]:
        if not self.browser:
            return [self.get(url) for url in urls]
        return self._loop.run_until_complete(self._render_many(urls))

    async def _render_many(self, urls: list[str], at_once: int = 6) -> list[HtmlResponse]:
        if urls:  # the first alone: it accepts the terms for the whole context
            first = [await self._render(urls[0])]
        gate = asyncio.Semaphore(at_once)

        async def one(url):
            async with gate:
                return await self._render(url)

        return first + list(await asyncio.gather(*(one(url) for url in urls[1:]))) if urls else []

    async def _render(self, url: str) -> HtmlResponse:
        page = await self._context.new_page()
        try:
            await page.goto(url, wait_until="networkidle")
            accept = page.locator("[data-qa-tos-accept]")
            if await accept.count():  # the terms, once per browser context
                await accept.first.click()
                await page.wait_for_load_state("networkidle")
            with contextlib.suppress(Exception):  # the app's placeholder while its data loads: wait it out
                await page.wait_for_function("() => !document.body.innerText.includes('Loading...')", timeout=5000)
            return HtmlResponse(page.url, body=(await page.content()).encode(), encoding="utf-8")
        finally:
            await page.close()

    def __enter__(self):
        if self.browser:
            from playwright.async_api import async_playwright

            self._loop = asyncio.new_event_loop()
            self._playwright = self._loop.run_until_complete(async_playwright().start())
            self._chromium = self._loop.run_until_complete(
                self._playwright.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"]
                )
            )
            self._context = self._loop.run_until_complete(self._chromium.new_context())
        return self

    def __exit__(self, *exc):
        if self.browser:
            self._loop.run_until_complete(self._chromium.close())
            self._loop.run_until_complete(self._playwright.stop())
            self._loop.close()


def configure(base: str, layout: str) -> None:
    body = json.dumps({"layout": layout, "rate_limit_per_minute": 100000}).encode()
    request = urllib.request.Request(f"{base}/_sandbox/config", data=body, headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).close()


def listed_people(site: str, n: int) -> list:
    found = []
    for person in default_population().people[OFFSET:]:
        path = ground_truth(person).get(site)
        if path:
            found.append((person, path))
            if len(found) >= n:
                break
    return found


def search_url(definition, base: str, person) -> str:
    """The first result page of a name + state search for the person, as the spider builds it (a form
    search: the sandbox's own results path)."""
    values = {"first_name": person.first_name, "last_name": person.last_name, "state": person.current.state}
    entries = sorted(
        definition.raw["search"], key=lambda e: set(e.get("requires", [])) != {"first_name", "last_name", "state"}
    )
    for entry in entries:
        if set(entry.get("requires", [])) <= {"first_name", "last_name", "state"}:
            if "form" in entry:
                from sandbox.brokers.radaris import results_path

                return base + results_path(person.first_name, person.last_name, person.current.state)
            url = base + render(entry["url"], values, encode=True)
            params = render_params(entry.get("params") or {}, values)
            return url + ("?" + params if params else "")
    raise LookupError(f"{definition.id}: no name + state search")


def pages_for(fetcher: Fetcher, definition, base: str, site: str, kind: str, layout: str, n: int) -> list:
    configure(base, layout)
    people = listed_people(site, n)
    if kind == "detail":
        pages = fetcher.get_many([base + path for _, path in people])
    else:
        found = [search_url(definition, base, person) for person, _ in people]
        pages = fetcher.get_many(list(dict.fromkeys(found)))
    if SAVE_TO is not None:  # --save: the pages as fixtures (the sandbox's made-up people only)
        for number, page in enumerate(pages):
            path = SAVE_TO / site / kind / layout / f"{number:02d}.html"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"<!-- {page.url} -->\n" + page.text)
    return pages


# ---- healing -------------------------------------------------------------------------------------


def heal(raw: dict, kind: str, pages: list, memory: dict):
    return healing.heal_detail(raw, pages, memory) if kind == "detail" else healing.heal_list(raw, pages, memory)


def llm_healer():
    """``crawler.healing.llm``'s healer on the OPENAI_* environment (a real server or the sandbox's test
    double), or None: no module, or no key."""
    if importlib.util.find_spec("crawler.healing.llm") is None:
        return None
    from crawler.ai.guard import LocalCache
    from crawler.healing import llm

    names = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_MODEL")
    settings = {name: os.environ[name] for name in names if os.environ.get(name)}
    if not settings.get("OPENAI_API_KEY") or not hasattr(llm, "LLMHealer"):
        return None
    client = llm.LLMClient.from_settings(settings, cache=LocalCache())
    return llm.LLMHealer(client) if client is not None else None


def llm_heal(healer, raw: dict, kind: str, pages: list, heuristic):
    """The heuristic heal with what the LLM adds (verified the same way), or None without an LLM."""
    if healer is None:
        return None
    return asyncio.run(healer.improve(raw, kind, pages, copy.deepcopy(heuristic)))


def _with(definition, raw: dict):
    from crawler.healing.heal import _definition

    return _definition(raw).with_base_url(definition.base_url)


def pages_needed(raw: dict, kind: str, pages: list, memory: dict, final: set, most: int) -> int | None:
    """The fewest pages a heal needs to heal every field the full heal heals."""
    if not final:
        return 0
    for k in range(1, most + 1):
        if set(heal(raw, kind, pages[:k], memory).proposals) >= final:
            return k
    return None


# ---- overhead ------------------------------------------------------------------------------------


def overhead(definition, pages: list, rounds: int = 15) -> tuple[float, float, float]:
    """Seconds per page: plain extract_detail; the crawl's path (Healer.read_detail: extraction with
    provenance, drift detection, hit counts) once the memory has its prints (then one page in 100 is
    fingerprinted); and while the memory is learning (every page fingerprinted: a new site, or after a heal)."""
    from scrapy.settings import Settings

    from crawler.healing.healer import Healer, _Site

    timings: dict[str, list] = {"plain": [], "steady": [], "learning": []}

    def healer(learned: bool) -> Healer:
        one = Healer(Settings({"HEAL_ENABLED": True}))
        one.sites[definition.id] = _Site(definition, definition.sha256)
        if learned:
            for page in pages:
                one.read_detail(definition, page)
            for field_memory in one.memory.of(definition.id, "detail").values():
                field_memory.learned = 10**6
            one.sites[definition.id] = _Site(definition, definition.sha256)
        return one

    def timed(kind: str) -> None:
        one = None if kind == "plain" else healer(kind == "steady")
        start = time.perf_counter()
        for page in pages:
            if one is None:
                extract_detail(definition, page)
            else:
                one.read_detail(definition, page)
        timings[kind].append((time.perf_counter() - start) / len(pages))

    for _ in range(rounds):
        timed("plain")
        timed("steady")
        timed("learning")
    return tuple(statistics.median(timings[k]) for k in ("plain", "steady", "learning"))


# ---- the run -------------------------------------------------------------------------------------


@dataclass
class Row:
    site: str
    kind: str
    layout: str
    off: Score
    heuristic: Score
    llm: Score | None
    triggered: bool
    healed: list
    failed: list
    needed: int | None


def run_site(site: str, base: str, kinds: list[str], args) -> tuple[list[Row], tuple[float, float] | None]:
    definition = load_definitions()[site].with_base_url(base)
    raw = definition.raw
    rows, cost = [], None
    healer = None if args.no_llm else llm_healer()
    with Fetcher(browser=site in BROWSER_SITES) as fetcher:
        for kind in kinds:
            v1 = pages_for(fetcher, definition, base, site, kind, "v1", args.pages)
            truth = records(definition, kind, v1)
            store = SelectorMemory()
            learn(store, definition, kind, v1[: args.learn])
            memory = store.as_relocation_memory(site, kind)
            if kind == "detail":
                cost = overhead(definition, v1)
            for layout in LAYOUTS:
                pages = v1 if layout == "v1" else pages_for(fetcher, definition, base, site, kind, layout, args.pages)
                off = compare(kind, truth, records(definition, kind, pages))
                broken = _broken(raw, kind, pages[: args.heal], memory)
                if broken:
                    healed = heal(raw, kind, pages[: args.heal], memory)
                    heuristic = compare(kind, truth, records(_with(definition, healed.definition), kind, pages))
                    needed = pages_needed(raw, kind, pages, memory, set(healed.proposals), args.heal)
                    llm = llm_heal(healer, raw, kind, pages[: args.heal], healed)
                    llm_score = (
                        compare(kind, truth, records(_with(definition, llm.definition), kind, pages)) if llm else None
                    )
                    rows.append(
                        Row(
                            site,
                            kind,
                            layout,
                            off,
                            heuristic,
                            llm_score,
                            True,
                            sorted(healed.proposals),
                            sorted(healed.failed),
                            needed,
                        )
                    )
                else:
                    rows.append(Row(site, kind, layout, off, off, None, False, [], [], 0))
    return rows, cost


def _broken(raw: dict, kind: str, pages: list, memory: dict) -> bool:
    if kind == "list" and not any(extract_list(healing._definition(raw), p).candidates for p in pages):
        return True
    return bool(healing.missing_fields(raw, kind, pages, memory))


def _cell(score: Score | None) -> str:
    if score is None:
        return "n/a"
    return f"{score.accuracy:.2f} w{score.wrong} m{score.missing}"


def print_table(rows: list[Row], costs: dict, verbose: bool) -> str:
    header = (
        f"{'site':<11} {'kind':<6} {'layout':<10} {'off':>14} {'heuristics':>14} {'+llm':>14} {'heal':>5} {'pages':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        needed = "-" if not r.triggered else (str(r.needed) if r.needed is not None else ">")
        print(
            f"{r.site:<11} {r.kind:<6} {r.layout:<10} {_cell(r.off):>14} {_cell(r.heuristic):>14} "
            f"{_cell(r.llm):>14} {'yes' if r.triggered else 'no':>5} {needed:>5}"
        )
        if verbose:
            bad = {f: row for f, row in r.heuristic.fields.items() if row[1] or row[2]}
            if bad:
                print(f"{'':<29} not ok (ok, wrong, missing): {bad}; unhealed: {r.failed}")
    changed = [r for r in rows if r.layout != "v1"]
    worst = min(changed, key=lambda r: r.heuristic.accuracy) if changed else None
    total = sum(r.heuristic.total for r in changed)
    wrong = sum(r.heuristic.wrong for r in changed)
    v1_ok = all(not r.triggered and r.off.accuracy == 1.0 for r in rows if r.layout == "v1")
    ratios = [steady / plain for plain, steady, _ in costs.values() if plain]
    learning = [learned / plain for plain, _, learned in costs.values() if plain]
    over = (statistics.median(ratios) - 1) * 100 if ratios else float("nan")
    over_learning = (statistics.median(learning) - 1) * 100 if learning else float("nan")
    for site, (plain, steady, learned) in costs.items():
        print(
            f"overhead {site}: extract {plain * 1000:.2f} ms/page; the crawl's read_detail {steady * 1000:.2f} ms/page "
            f"(x{steady / plain:.2f}); while learning (first pages of a process) {learned * 1000:.2f} ms/page "
            f"(x{learned / plain:.2f})"
        )
    headline = (
        f"healing: heuristics min accuracy {worst.heuristic.accuracy:.2f} ({worst.site}/{worst.kind}/{worst.layout}); "
        f"wrong {100 * wrong / max(1, total):.1f}%; overhead {over:.0f}% (while learning {over_learning:.0f}%); "
        f"v1 unchanged and no heal: {v1_ok}"
        if worst
        else "healing: nothing measured"
    )
    print(headline)
    return headline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", default=",".join(SITES))
    parser.add_argument("--kinds", default="detail,list")
    parser.add_argument("--pages", type=int, default=12, help="pages measured per site, kind and layout")
    parser.add_argument("--learn", type=int, default=12, help="v1 pages the memory learns from")
    parser.add_argument("--heal", type=int, default=4, help="pages of the new layout a heal sees")
    parser.add_argument("--no-llm", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true", help="per-field misses and unhealed fields")
    parser.add_argument("--save", type=Path, help="write every page fetched under this directory")
    parser.add_argument("--offset", type=int, default=0, help="skip this many people of the population")
    args = parser.parse_args(argv)
    global SAVE_TO, OFFSET
    SAVE_TO, OFFSET = args.save, args.offset
    sites = [s for s in args.sites.split(",") if s]
    kinds = [k for k in args.kinds.split(",") if k]
    rows, costs = [], {}
    with running(["--free-ports", "--only", ",".join(sites)], timeout=60) as urls:
        for site in sites:
            site_rows, cost = run_site(site, urls[site], kinds, args)
            rows += site_rows
            if cost:
                costs[site] = cost
    print_table(rows, costs, args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
