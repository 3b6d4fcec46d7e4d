"""Try a site definition on a page in ``scrapy shell``::

    $ scrapy shell "http://127.0.0.1:8401/name/john-smith"
    >>> from crawler.extraction import shell
    >>> shell.run("fastpeople", response)            # list or detail, whichever the page is
    >>> shell.run("fastpeople", response, "detail")  # force one

It reloads the YAML on every call, so edit, save and run again. Prints to the console only
(the shell is interactive: the values shown are the page's own).
"""

from __future__ import annotations

import pprint
from pathlib import Path

from crawler.extraction.definitions import DEFAULT_DIRECTORY, SiteDefinition, load_definition
from crawler.extraction.engine import ListPage, detail_not_found, extract_detail, extract_list
from crawler.notation import parse_pattern, pattern_in


def _definition(site) -> SiteDefinition:
    if isinstance(site, SiteDefinition):
        return site
    path = Path(site)
    return load_definition(path if path.suffix == ".yaml" else DEFAULT_DIRECTORY / f"{site}.yaml")


def run(site, response, kind: str | None = None) -> ListPage | dict:
    """Extract ``response`` with the site's definition, print it and return it."""
    definition = _definition(site)
    if kind not in (None, "list", "detail"):
        raise ValueError("kind: expected 'list', 'detail' or None")
    for block_kind, signatures in definition.blocks.items():
        # block signatures are read in the HTML itself (markup included), as the block detector does
        if any(pattern_in(parse_pattern(s), response.text) for s in signatures):
            print(f"{definition.id}: this page matches the {block_kind} signature")
    if kind != "detail":
        page = extract_list(definition, response)
        # a record page may show its record as the one card linking to itself: that is a detail page
        own_card = [c.get("url") for c in page.candidates] == [response.url]
        if kind == "list" or (not page.empty and not own_card) or page.no_results:
            print(
                f"{definition.id} list: {len(page.candidates)} candidate(s), next page {page.next_url}, "
                f"no-results marker {'yes' if page.no_results else 'no'}"
            )
            for candidate in page.candidates:
                pprint.pprint(candidate, sort_dicts=False)
            return page
    if detail_not_found(definition, response):
        print(f"{definition.id} detail: the page-not-found marker matches")
    record = extract_detail(definition, response)
    print(f"{definition.id} detail:")
    pprint.pprint(record, sort_dicts=False)
    return record
