"""Settings of self-healing extraction (crawler/healing/)."""

from __future__ import annotations

from crawler.setting import Component, Setting

HEALING = Component(
    "Self-healing extraction",
    "crawler/healing/healer.py",
    (
        Setting(
            "HEAL_ENABLED",
            "bool",
            "true",
            "detect broken fields and cards while crawling and relocate them (off: a changed layout is a "
            "`parse_error`, as before)",
        ),
        Setting(
            "HEAL_MIN_PAGES",
            "int",
            "3",
            "pages of one kind a heal must read type-valid values on before it can be active at once; a heal made on "
            "fewer (the crawl ran out of broken pages) is at best quarantined",
            min=1,
            max=20,
        ),
        Setting(
            "HEAL_AUTO_ACCEPT",
            "fraction",
            "0.75",
            "confidence (0..1) at or above which a heal is active at once, for this crawl and every other worker; "
            "below it the version is quarantined and the listings read with it wait for a person "
            "(`python -m crawler.healing accept`)",
        ),
        Setting(
            "HEAL_MAX_HELD_PAGES",
            "int",
            "40",
            "broken pages held per site and page kind while a heal is looked for; past it the oldest is given up as "
            "`parse_error` (counted, never silent)",
            min=1,
        ),
        Setting(
            "HEAL_LEARN_PAGES",
            "int",
            "25",
            "pages each field's nodes are fingerprinted on into the selector memory (over every crawl, kept in "
            "PostgreSQL; again after a heal), then one page in 100; hit counts are kept for every page",
            min=0,
        ),
    ),
)

COMPONENTS = (HEALING,)
