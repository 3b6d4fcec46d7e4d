"""Page actions of browser sites (``actions:`` in a definition) as scrapy-playwright PageMethods."""

from __future__ import annotations

from scrapy_playwright.page import PageMethod

from crawler.extraction.templates import render

# optional actions must not fail the page: a click only if the element is there, a bounded wait
CLICK_IF_PRESENT = "(s) => { const e = document.querySelector(s); if (e) e.click(); return !!e; }"
WAIT_IF_APPEARS = """(s) => new Promise((done) => { const t0 = Date.now();
  (function poll() { if (document.querySelector(s) || Date.now() - t0 > 5000) done(!!document.querySelector(s));
                     else setTimeout(poll, 100); })(); })"""


def page_methods(actions: list[dict], values: dict) -> list[PageMethod]:
    methods = []
    for action in actions or ():
        optional = action.get("optional", False)
        if "click" in action:
            methods.append(
                PageMethod("evaluate", CLICK_IF_PRESENT, action["click"])
                if optional
                else PageMethod("click", action["click"])
            )
        elif "wait_for" in action:
            methods.append(
                PageMethod("evaluate", WAIT_IF_APPEARS, action["wait_for"])
                if optional
                else PageMethod("wait_for_selector", action["wait_for"])
            )
        elif "fill" in action:
            methods.append(PageMethod("fill", action["fill"]["selector"], render(action["fill"]["value"], values)))
        elif "press" in action:
            methods.append(PageMethod("press", action["press"]["selector"], action["press"]["key"]))
        elif "wait" in action:
            methods.append(PageMethod("wait_for_timeout", action["wait"]))
        elif "evaluate" in action:
            methods.append(PageMethod("evaluate", action["evaluate"]))
    return methods
