"""Person names as broker sites print them, and how well two of them agree.

Sites write "John Michael Smith", "John M. Smith", "John M Smith" or "Smith, John M.",
sometimes in capitals, with suffixes. ``parse_name`` turns each into (first, middles, last);
``compare_names`` grades a listing's name against the target's: exact, nickname (the
``nicknames`` package: ~1,100 canonical English names, plus a few pairs it lacks), initial
("J. Smith"), typo (Jaro-Winkler, e.g. Zachery/Zachary) or disagree, and separately whether
middle names agree or conflict ("John M" and "John L").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

from nicknames import NickNamer
from rapidfuzz.distance import JaroWinkler

SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "v", "md", "phd", "esq"})
TITLES = frozenset({"mr", "mrs", "ms", "miss", "dr", "prof"})
# Common pairs the package's table lacks (name -> nicknames).
EXTRA_NICKNAMES = {
    "barbara": {"barb", "barbie"},
    "kathleen": {"kate", "katie"},
    "katherine": {"katie", "kate"},
    "catherine": {"katie", "kate"},
}
FIRST_TYPO_SIMILARITY = 0.88  # Jaro-Winkler; "Zachery"/"Zachary" = 0.94, "John"/"Joan" = 0.83
LAST_TYPO_SIMILARITY = 0.90


@dataclass(frozen=True)
class ParsedName:
    first: str
    middles: tuple[str, ...]
    last: str

    @property
    def valid(self) -> bool:
        return bool(self.first and self.last)


def fold(text: str) -> str:
    """Lower case, accents off, only letters, apostrophes, hyphens and spaces."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().casefold()
    return " ".join(re.sub(r"[^a-z' -]+", " ", text).replace("-", " ").split())


def parse_name(text: str) -> ParsedName:
    """(first, middles, last) from any of the sites' name orders; empty parts when unparsable."""
    if "," in text:  # "Smith, John M." -- but not "John Smith, Jr."
        last, _, rest = text.partition(",")
        if fold(rest).split() and fold(rest).split()[0] not in SUFFIXES:
            text = f"{rest} {last}"
    words = [w for w in fold(text.replace(".", " ").replace(",", " ")).split() if w not in SUFFIXES]
    while words and words[0] in TITLES:
        words.pop(0)
    if len(words) < 2:
        return ParsedName(words[0] if words else "", (), "")
    return ParsedName(words[0], tuple(words[1:-1]), words[-1])


@cache
def _namer() -> NickNamer:
    return NickNamer()


@cache
def related(a: str, b: str) -> bool:
    """Whether one name is a nickname of the other, or both are nicknames of one name."""
    if a == b:
        return True
    namer = _namer()
    nicks_a = namer.nicknames_of(a) | EXTRA_NICKNAMES.get(a, set())
    nicks_b = namer.nicknames_of(b) | EXTRA_NICKNAMES.get(b, set())
    if b in nicks_a or a in nicks_b:
        return True
    canon_a = namer.canonicals_of(a) | {n for n, nicks in EXTRA_NICKNAMES.items() if a in nicks}
    canon_b = namer.canonicals_of(b) | {n for n, nicks in EXTRA_NICKNAMES.items() if b in nicks}
    return bool(canon_a & canon_b)


def first_level(wanted: str, seen: str) -> str:
    if wanted == seen:
        return "exact"
    if len(seen) == 1 or len(wanted) == 1:  # "J. Smith"
        return "initial" if wanted[0] == seen[0] else "disagree"
    if related(wanted, seen):
        return "nickname"
    if JaroWinkler.similarity(wanted, seen) >= FIRST_TYPO_SIMILARITY:
        return "typo"
    return "disagree"


def last_level(wanted: str, seen: ParsedName) -> str:
    # multi-word surnames ("de la cruz") are compared against the listing's trailing words
    words = wanted.split()
    tail = " ".join([*seen.middles, seen.last][-len(words) :]) if len(words) > 1 else seen.last
    if wanted == tail or wanted.replace(" ", "") == seen.last:
        return "exact"
    return "typo" if JaroWinkler.similarity(wanted, tail) >= LAST_TYPO_SIMILARITY else "disagree"


def middle_level(wanted: str, seen: ParsedName, last_words: int) -> str:
    """agree / conflict / unknown: a middle name or initial on both sides is evidence either way."""
    middles = seen.middles[: len(seen.middles) - (last_words - 1)] if last_words > 1 else seen.middles
    if not wanted or not middles:
        return "unknown"
    seen_middle = middles[0]
    if len(wanted) == 1 or len(seen_middle) == 1:
        return "agree" if wanted[0] == seen_middle[0] else "conflict"
    return "agree" if related(wanted, seen_middle) else "conflict"


NAME_RANK = {"exact": 5, "nickname": 4, "typo": 3, "initial": 2, "disagree": 0}


@dataclass(frozen=True)
class NameComparison:
    level: str  # exact | nickname | typo | initial | disagree (the weaker of first and last)
    middle: str  # agree | conflict | unknown
    alias: bool  # matched on one of the listing's other names, not its main one


def compare_one(first: str, middle: str, last: str, seen: ParsedName) -> tuple[str, str]:
    if not seen.valid:
        return "disagree", "unknown"
    f_level, l_level = first_level(first, seen.first), last_level(last, seen)
    if "disagree" in (f_level, l_level):
        level = "disagree"
    elif "typo" in (f_level, l_level) and f_level != "initial":
        level = "typo"
    else:
        level = f_level  # exact, nickname or initial, with the last name exact
    return level, middle_level(middle, seen, len(last.split()))


def compare_names(first: str, middle: str, last: str, full_name: str, aliases: list[str]) -> NameComparison:
    """The best agreement between the target (folded parts) and the listing's name or aliases."""
    best: tuple[int, int, NameComparison] | None = None
    for index, text in enumerate([full_name, *aliases]):
        level, mid = compare_one(first, middle, last, parse_name(text))
        # main name before aliases at equal level; a middle conflict ranks below any agreement
        rank = (NAME_RANK[level] * 2 - (mid == "conflict"), -index)
        if best is None or rank > best[:2]:
            best = (*rank, NameComparison(level, mid, index > 0))
    return best[2]
