"""Settings of the item pipelines: validate, match, dedup, screenshots."""

from __future__ import annotations

from crawler.setting import Component, Setting


def check_phone_region(value) -> None:
    import phonenumbers  # only here: reading settings should not load the metadata

    if str(value or "") not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"expected an upper-case region code phonenumbers knows (US, GB, DE...), got {value!r}")


VALIDATE = Component(
    "Validate",
    "pipelines/validate.py",
    (
        Setting(
            "VALIDATE_PHONE_REGION",
            "str",
            "US",
            "region assumed for phone numbers written without a country code, in listings (E.164 here) and, "
            "by this name, in a scan's target (spider arguments, the match pipeline), so that both sides compare alike",
            check=check_phone_region,
            accepts="region code",
        ),
    ),
)

MATCH = Component(
    "Match",
    "pipelines/match.py",
    (
        Setting(
            "MATCH_THRESHOLD",
            "fraction",
            "0.85",
            "a scan's candidate listing whose match confidence reaches this is the target (findings); below, a "
            'rejected candidate (see "Matching"); 0.85: best measured by `bench/matching.py`',
        ),
        Setting(
            "MATCH_REVIEW_THRESHOLD",
            "fraction",
            "0.6",
            "candidates scoring from this up to MATCH_THRESHOLD are kept (encrypted) for the person to answer "
            '"is this you?" on the page: yes makes findings, no is remembered for that listing',
            at_most="MATCH_THRESHOLD",
        ),
        Setting(
            "MATCH_AGE_TOLERANCE",
            "int",
            "1",
            "years a listing's age may differ from the target's and still agree (matching, fuzzy dedup grouping, "
            "the example spider's result filter)",
            min=0,
        ),
    ),
)

DEDUP = Component(
    "Dedup",
    "pipelines/dedup.py",
    (
        Setting(
            "DEDUP_WINDOW_SECONDS", "int", "86400", "exact dedup window for listings, seconds (0 = forever)", min=0
        ),
        Setting(
            "DEDUP_BLOOM_CAPACITY",
            "int",
            "10000000",
            "Bloom filter (event ids, per source) sized for this many ids; it grows by layers beyond",
            min=1,
        ),
        Setting("DEDUP_BLOOM_ERROR_RATE", "fraction", "0.001", "its false-positive rate"),
        Setting(
            "DEDUP_FUZZY_THRESHOLD",
            "fraction",
            "0.85",
            "listings of one scan scoring at least this are grouped as the same person",
        ),
        Setting("DEDUP_MAX_IN_FLIGHT", "int", "4", "dedup calls waiting on Redis at once (the rest queue)", min=1),
    ),
)

SCREENSHOTS = Component(
    "Screenshots (evidence)",
    "pipelines/screenshots.py",
    (
        Setting(
            "SCREENSHOTS_ENABLED",
            "bool",
            "true",
            'a full-page Chromium screenshot of every accepted listing (see "Scan events, errors and evidence")',
        ),
        Setting(
            "SCREENSHOTS_TIMEOUT",
            "number",
            "180",
            "seconds a screenshot may take (rate-limit waits included) before it is recorded as failed",
            above=0,
        ),
        Setting(
            "SCREENSHOTS_DIR",
            "str",
            "",
            "where evidence screenshots are stored, encrypted and content-addressed",
            shown_default="`DATA_DIR/screenshots`",
            accepts="directory",
        ),
    ),
)

COMPONENTS = (VALIDATE, MATCH, DEDUP, SCREENSHOTS)
