"""Drift detection: a field breaks on misses in a row that chance does not explain, never on one empty field."""

from crawler.healing.detect import MIN_HISTORY, DriftDetector, misses_needed, wilson_lower
from crawler.healing.memory import SelectorMemory


def test_misses_needed_follows_the_fields_presence():
    assert misses_needed(1.0) == 2
    assert misses_needed(0.9) == 2  # 0.1^2 = 1 %
    assert misses_needed(0.6) == 6  # 0.4^5 = 1.02 % is still chance
    assert misses_needed(0.3) == 10  # capped


def test_presence_is_what_the_history_supports():
    assert 0.56 < wilson_lower(5, 5) < 0.57  # five of five: at least 57 %, not "always"
    assert wilson_lower(100, 100) > 0.96
    assert wilson_lower(0, 10) == 0.0


def test_a_few_pages_with_a_field_do_not_make_its_absence_a_break():
    detector = detector_with_history(5, 5)  # aliases on the first five people, then three without
    assert all(detector.observe("site", "detail", {"phones": False}) == set() for _ in range(3))


def detector_with_history(pages: int, hits: int) -> DriftDetector:
    """``hits`` of ``pages`` spread evenly, the last page a hit."""
    detector = DriftDetector(SelectorMemory())
    for page in range(pages):
        detector.observe("site", "detail", {"phones": (pages - 1 - page) % (pages // hits) == 0})
    return detector


def test_a_usually_present_field_breaks_after_two_misses_in_a_row():
    detector = detector_with_history(200, 200)
    assert detector.observe("site", "detail", {"phones": False}) == set()  # one empty field: never a break
    assert detector.observe("site", "detail", {"phones": False}) == {"phones"}


def test_a_hit_resets_the_streak():
    detector = detector_with_history(200, 200)
    detector.observe("site", "detail", {"phones": False})
    detector.observe("site", "detail", {"phones": True})
    assert detector.observe("site", "detail", {"phones": False}) == set()


def test_a_field_shown_for_some_people_needs_a_longer_streak():
    detector = DriftDetector(SelectorMemory())
    for page in range(401):  # present on every other page (0.5), the last one a hit
        detector.observe("site", "detail", {"aliases": page % 2 == 0})
    presence, _ = detector.presence("site", "detail", "aliases")
    broken = [detector.observe("site", "detail", {"aliases": False}) for _ in range(misses_needed(presence))]
    assert 6 <= len(broken) <= 8 and broken[-2] == set() and broken[-1] == {"aliases"}


def test_no_history_or_a_rare_field_never_breaks_on_its_own():
    fresh = DriftDetector(SelectorMemory())
    assert all(fresh.observe("site", "detail", {"emails": False}) == set() for _ in range(MIN_HISTORY + 10))
    rare = detector_with_history(50, 5)  # 10 %: under MIN_PRESENCE
    assert all(rare.observe("site", "detail", {"phones": False}) == set() for _ in range(20))


def test_reset_after_a_heal_starts_the_streaks_again():
    detector = detector_with_history(200, 200)
    detector.observe("site", "detail", {"phones": False})
    detector.reset("site", "detail")
    assert detector.observe("site", "detail", {"phones": False}) == set()


def test_sites_and_page_kinds_are_apart():
    detector = detector_with_history(200, 200)
    detector.observe("site", "detail", {"phones": False})
    assert detector.observe("other", "detail", {"phones": False}) == set()
    assert detector.observe("site", "list", {"phones": False}) == set()
