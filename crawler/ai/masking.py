"""What may leave the process for an LLM: pages condensed and masked, text masked, and a last check.

- ``mask_text``: personal values -> typed placeholders ([NAME], [EMAIL], [PHONE], [ADDRESS],
  [CITY_STATE], [ZIP], [NUMBER]). Labels survive: lowercase words are kept, and so are capitalised
  words of the label vocabulary (``LABEL_WORDS``: "Phone", "Possible Relatives", "Lives in"...); every
  other capitalised word run is taken for a name. It over-masks rather than under-masks.
- ``condense_html``: the page's structure for a model that writes selectors. Head, scripts (JSON-LD
  kept with keys and masked values), styles, SVG, comments and hidden inputs go; tags stay with the
  attributes a selector uses. Masking is on by construction: every text node and every attribute value
  kept passes through ``mask_text`` (or a stricter rule), only ``id``/``class``/``itemprop``/``rel``/
  ``role``/``type`` values are kept as written. Repeated siblings are cut to a few.
- ``assert_masked``: the client's last check before a request leaves: no e-mail, no phone, no value
  a job registered as personal (``crawler.observability.logs.register_pii``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import lxml.html
import phonenumbers
from lxml import etree


def _words(text: str) -> list[str]:
    return text.split()


NAME, EMAIL, PHONE, ADDRESS, CITY_STATE, ZIP, NUMBER = (
    "[NAME]",
    "[EMAIL]",
    "[PHONE]",
    "[ADDRESS]",
    "[CITY_STATE]",
    "[ZIP]",
    "[NUMBER]",
)
MASKED_VALUE = "[VALUE]"

LABEL_WORDS = frozenset(
    _words(
        "phone phones telephone tel mobile cell cellular landline land line wireless voip fax number numbers "
        "primary secondary other type carrier provider email emails e-mail e-mails mail address addresses "
        "street city state zip zipcode postal code location locations area county country region home work "
        "age aged years year yrs old born birth birthday birthdate date dob deceased died alive name names "
        "first middle last full aka a.k.a also known as alias aliases nickname nicknames maiden relative "
        "relatives family associate associates associated neighbor neighbors neighbour neighbours friends "
        "spouse partner parents parent children child sibling siblings brother sister mother father lives "
        "live living lived resides resided residing reside moved current currently previous previously past "
        "former history prior recent latest since until present reported report reports updated update last "
        "seen first possible possibly likely may might related connections connection view full details "
        "detail profile profiles record records result results found match matches showing show more less see "
        "all next prev page pages back search find people person persons lookup reverse free background check "
        "contact information info summary overview personal data places place remove removal opt out optout "
        "privacy policy terms about help login sign up submit go continue male female gender unknown none n/a "
        "yes no not available in at on of the a an and or to from for with by is are was were be been has "
        "have had this that these those it its their his her they them he she we our you your my me who what "
        "where when how which month months day days january february march april may june july august "
        "september october november december jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu "
        "fri sat sun st nd rd th used usually often sometimes ages landlines mobiles "
        "deceased: total count"
    )
)

PLACE_TAILS = frozenset(
    _words("city town village park heights beach springs falls hills valley lake island point port creek county")
)

# states and territories: "Springfield, IL" and "SPRINGFIELD IL 62701"
STATE_CODES = _words(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP "
)
STREET_SUFFIXES = _words(
    "street st avenue ave av road rd drive dr lane ln place pl boulevard blvd court ct way circle cir "
    "terrace ter trail trl parkway pkwy highway hwy square sq loop run row path pike alley aly crossing "
    "xing point pt "
)

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# formatted phones and bare 10-digit runs (the last check; mask_text uses phonenumbers' matcher)
PHONE_RE = re.compile(
    r"(?<![\w.])(?:\+?1[\s.-]?)?(?:\(\d{3}\)\s?|\d{3}[\s.-])\d{3}[\s.-]\d{4}(?!\w)|(?<![\w.])(?:\+?1)?\d{10}(?![\w.])"
)
STREET_RE = re.compile(
    r"\bP\.?\s?O\.?\s+Box\s+\d+|\b\d{1,6}[A-Za-z]?"
    r"(?:\s+(?:[NSEW]|North|South|East|West)\.?)?"
    r"(?:\s+[A-Za-z0-9'.-]+){0,4}?\s+(?:" + "|".join(STREET_SUFFIXES) + r")\b\.?"
    r"(?:,?\s+(?:Apt|Apartment|Unit|Suite|Ste|#)\.?\s*#?[\w-]+)?",
    re.IGNORECASE,
)
_CITY_WORD = r"(?:[A-Z][A-Za-z'-]*\.?)"
CITY_STATE_RE = re.compile(
    rf"\b(?P<city>{_CITY_WORD}(?:[ \t]+{_CITY_WORD}){{0,3}}),?[ \t]+(?P<state>{'|'.join(STATE_CODES)})\b"
    r"(?:[ \t]+(?P<zip>\d{5}(?:-\d{4})?))?(?!\w)"
)
ZIP_RE = re.compile(r"(?<![\w-])\d{5}(?:-\d{4})?(?![\w-])")
NUMBER_RE = re.compile(r"\d+(?:[.,/:-]\d+)*")
PLACEHOLDER_RE = re.compile(r"\[[A-Z_]+\]")
# absolute URLs, and paths of two segments or more ("/john-smith_id_G123", "/p/John/Smith/1"): slugs hold names
URL_TEXT_RE = re.compile(
    r"\b(?:https?://|www\.)[^\s\"'<>]+|(?<![\w/.])/[\w.~%-]+(?:/[\w.~%-]*)+|(?<![\w/.])/[\w.~%-]*[_-][\w.~%-]*"
)
WORD_RE = re.compile(r"[A-Za-z][A-Za-z'’-]*\.?")
SPACES_RE = re.compile(r"\s+")


def _label(word: str) -> bool:
    return word.lower().strip(".").strip("'’") in LABEL_WORDS


def _known_patterns(known_values: Iterable[str]) -> list[tuple[re.Pattern[str], str]]:
    """Regexes for values the caller knows are personal: whole values first, then their words."""
    patterns, words = [], set()
    for value in sorted({str(v).strip() for v in known_values if v and str(v).strip()}, key=len, reverse=True):
        if "@" in value:
            patterns.append((re.compile(re.escape(value), re.IGNORECASE), EMAIL))
            continue
        digits = re.sub(r"\D", "", value)
        if len(digits) >= 7 and len(digits) >= len(re.sub(r"\s", "", value)) - 4:  # a phone, however written
            patterns.append((re.compile(r"\D{0,3}".join(digits)), PHONE))
            continue
        words.update(w for w in re.split(r"[^A-Za-z'’-]+", value) if len(w.strip("'’-")) >= 2)
    for word in sorted(words, key=len, reverse=True):
        patterns.append((re.compile(rf"(?<![A-Za-z]){re.escape(word)}(?![A-Za-z])", re.IGNORECASE), NAME))
    return patterns


def _city_state(match: re.Match[str]) -> str:
    # leading label words ("Current Address Springfield IL") stay labels
    words = match["city"].split()
    kept = []
    while len(words) > 1 and _label(words[0]):
        kept.append(words.pop(0))
    masked = CITY_STATE + (f" {ZIP}" if match["zip"] else "")
    return " ".join([*kept, masked])


def _phones(text: str) -> str:
    pieces, last = [], 0
    for found in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.POSSIBLE):
        pieces += [text[last : found.start], PHONE]
        last = found.end
    return "".join(pieces) + text[last:]


def _names(segment: str) -> str:
    """Capitalised runs that are not labels -> [NAME] ("Smith, John M." is one run)."""
    out, last, run = [], 0, 0  # run: words in the current name run
    for match in WORD_RE.finditer(segment):
        word = match.group()
        gap = segment[last : match.start()]
        # an initial ("A.", or "A" inside a run) is part of the name, not the label word "a"
        initial = len(word.rstrip(".")) == 1 and (word.endswith(".") or run > 0)
        # "Kansas City", "Palm Beach": a place word ending a name run belongs to the name
        place_tail = run > 0 and word.lower().rstrip(".") in PLACE_TAILS
        name_like = word[0].isupper() and (initial or place_tail or not _label(word))
        # spaces continue a run; a comma only after a lone word ("Smith, John"), not between names
        if name_like and run and (gap.isspace() or (run == 1 and re.fullmatch(r",\s*", gap))):
            run, last = run + 1, match.end()
            continue
        out += [gap, NAME if name_like else word]
        run, last = int(name_like), match.end()
    out.append(segment[last:])
    return "".join(out)


def mask_text(text: str, known_values: Iterable[str] = ()) -> str:
    """``text`` with personal values replaced by typed placeholders (see the module's docstring)."""
    if not text:
        return text
    for pattern, placeholder in _known_patterns(known_values):
        text = pattern.sub(placeholder, text)
    text = EMAIL_RE.sub(EMAIL, text)
    text = URL_TEXT_RE.sub(lambda m: mask_url(m.group()), text)
    text = STREET_RE.sub(ADDRESS, text)
    text = CITY_STATE_RE.sub(_city_state, text)
    text = _phones(text)
    text = ZIP_RE.sub(ZIP, text)
    text = NUMBER_RE.sub(NUMBER, text)
    # names last, between the placeholders (whose own capitals are not names)
    pieces, last = [], 0
    for match in PLACEHOLDER_RE.finditer(text):
        pieces += [_names(text[last : match.start()]), match.group()]
        last = match.end()
    return "".join(pieces) + _names(text[last:])


# --- condensing HTML --------------------------------------------------------------------------------

DROP_TAGS = frozenset(
    _words("head script style svg noscript template iframe object embed canvas link meta base title picture source ")
)
VALUE_KEPT = ("id", "class", "itemprop", "rel", "role", "type")
TEXT_ATTRIBUTES = ("alt", "title", "aria-label", "placeholder", "name", "for", "value", "content", "label")
URL_ATTRIBUTES = ("href", "action", "src", "data-href", "data-link", "data-url")
URL_WORDS = frozenset(_words("find person people p name names results result search page phone email removal optout "))
BLOCK_TAGS = frozenset(
    _words(
        "html body div section article aside header footer main nav form table thead tbody tr ul ol li dl dt "
        "dd p h1 h2 h3 h4 h5 h6 "
    )
)
SIMILAR_KEPT = 3  # of a run of more than SIMILAR_CUT consecutive alike siblings (cards, rows), the first few
SIMILAR_CUT = 8  # (a detail page's few alike sections, a definition list's values, all stay)
TEXT_MAX = 120
ATTRIBUTE_MAX = 60
DEFAULT_MAX_CHARS = 24_000


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mask_url(url: str) -> str:
    """The URL's path shape: known words kept, every other segment and query value masked, no host."""
    url = url.strip()
    if url.startswith(("javascript:", "mailto:", "tel:")):
        return url.split(":", 1)[0] + ":" + MASKED_VALUE
    path, _, query = re.sub(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*", "", url).split("#", 1)[0].partition("?")

    def segment(part: str) -> str:
        if not part or part.lower() in URL_WORDS or _label(part):
            return part
        return "[N]" if part.isdigit() else "[X]"

    masked = "/".join(segment(part) for part in path.split("/"))
    if query:
        keys = [pair.split("=", 1)[0] for pair in query.split("&") if pair]
        masked += "?" + "&".join(f"{_short(mask_text(key), 20)}=[X]" for key in keys)
    return _short(masked, ATTRIBUTE_MAX)


def _data_value(value: str) -> str:
    """A data-* value: kept when it is a structural word ("phones", "card"), else masked."""
    words = re.split(r"[^A-Za-z]+", value)
    plain = re.fullmatch(r"[a-z][a-z_-]{0,30}", value) is not None
    if plain and all(not w or w.lower() in LABEL_WORDS or w.lower() in STRUCTURE_WORDS for w in words):
        return value
    return MASKED_VALUE


STRUCTURE_WORDS = frozenset(
    _words(
        "card cards list item items row rows section sections header body footer content container wrapper "
        "main summary facts fact link links title heading label value values block group panel tab tabs entry "
        "entries hidden visible active "
    )
)


def _attribute(name: str, value: str) -> str | None:
    name = name.lower()
    if name in VALUE_KEPT:
        return _short(SPACES_RE.sub(" ", value).strip(), 80)
    if name == "itemtype":
        return value if re.fullmatch(r"https?://schema\.org/\w+", value.strip()) else MASKED_VALUE
    if name == "itemscope":
        return ""
    if name in URL_ATTRIBUTES:
        return mask_url(value)
    if name.startswith("data-"):
        return mask_url(value) if value.strip().startswith(("/", "http")) else _data_value(value)
    if name in TEXT_ATTRIBUTES or name.startswith("aria-"):
        return _short(mask_text(SPACES_RE.sub(" ", value).strip()), ATTRIBUTE_MAX)
    return None  # style, event handlers, sizes...: not what a selector needs


def _json_masked(value, key: str = ""):
    if isinstance(value, dict):
        return {k: _json_masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        kept = [_json_masked(v, key) for v in value[:SIMILAR_KEPT]]
        return kept + (["[and more]"] if len(value) > SIMILAR_KEPT else [])
    if isinstance(value, str):
        if key in ("@type", "@context") and re.fullmatch(r"[A-Za-z:/.]+", value):
            return value  # schema vocabulary, not data
        return _short(mask_text(value), TEXT_MAX)
    if isinstance(value, bool) or value is None:
        return value
    return NUMBER


def _ld_json(text: str) -> str:
    raw = text.strip()
    for candidate in (raw, raw.rstrip(";").strip()):
        try:
            return json.dumps(_json_masked(json.loads(candidate)), ensure_ascii=False)
        except ValueError:
            continue
    return _short(mask_text(SPACES_RE.sub(" ", raw)), 2 * TEXT_MAX)  # unreadable JSON: masked as text


def _text(text: str | None) -> str:
    text = SPACES_RE.sub(" ", text or "").strip()
    return _short(mask_text(text), TEXT_MAX) if text else ""


def _signature(element) -> tuple[str, str]:
    return element.tag, " ".join(sorted((element.get("class") or "").split()))


def _dropped(element) -> bool:
    if not isinstance(element.tag, str):
        return True  # comments, processing instructions
    tag = element.tag.lower()
    if tag == "script":
        return (element.get("type") or "").strip().lower() != "application/ld+json"
    if tag == "input" and (element.get("type") or "").strip().lower() == "hidden":
        return True
    return tag in DROP_TAGS


def _runs(element) -> list[list]:
    """The kept children in runs of consecutive alike siblings (same tag and classes)."""
    runs: list[list] = []
    for child in element:
        if _dropped(child):
            continue
        if runs and _signature(runs[-1][0]) == _signature(child):
            runs[-1].append(child)
        else:
            runs.append([child])
    return runs


def _render_children(element, out: list[str]) -> None:
    """Children and their tails; of a long run of alike siblings (cards, rows) only the first few."""
    for run in _runs(element):
        cut = len(run) > SIMILAR_CUT
        for child in run[:SIMILAR_KEPT] if cut else run:
            _render(child, out)
            out.append(_text(child.tail))
        if cut:
            child_tag, classes = _signature(run[0])
            described = f"{child_tag}.{classes.replace(' ', '.')}" if classes else child_tag
            out.append(f"<!-- {len(run) - SIMILAR_KEPT} more {described} -->")


def _render(element, out: list[str]) -> None:
    tag = element.tag.lower()
    attributes = []
    for name, value in element.attrib.items():
        kept = _attribute(name, value)
        if kept is not None:
            attributes.append(f' {name}="{kept}"' if kept else f" {name}")
    if tag in BLOCK_TAGS:
        out.append("\n")
    out.append(f"<{tag}{''.join(attributes)}>")
    if tag == "script":  # application/ld+json, the only script kept
        out.append(_ld_json(element.text or ""))
    else:
        out.append(_text(element.text))
        _render_children(element, out)
    if tag not in ("br", "hr", "img", "input", "wbr"):
        out.append(f"</{tag}>")


def condense_html(html: str, max_chars: int = DEFAULT_MAX_CHARS) -> str:
    """The page's masked structure (see the module's docstring), at most ``max_chars`` long."""
    if not html or not html.strip():
        return ""
    try:
        document = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return ""
    body = document.find("body")
    root = body if body is not None else document
    out: list[str] = []
    # JSON-LD in the head is data the model may need: it is kept (masked) before the body
    head = document.find("head")
    if head is not None:
        for script in head.iter("script"):
            if not _dropped(script):
                _render(script, out)
    _render(root, out)
    condensed = re.sub(r"\n\s*\n+", "\n", "".join(out)).strip()
    if len(condensed) > max_chars:
        condensed = condensed[: max_chars - 20].rsplit("<", 1)[0] + "\n<!-- truncated -->"
    return condensed


# --- the last check -----------------------------------------------------------------------------------


class UnmaskedText(ValueError):
    """Text about to leave the process still holds personal data; ``kind`` says what (never the value)."""

    def __init__(self, kind: str):
        super().__init__(f"unmasked {kind} in text bound for the LLM")
        self.kind = kind


def registered_words() -> frozenset[str]:
    """The words of values registered with ``register_pii`` (lower-cased), as the log redactor holds them."""
    from crawler.observability.logs import redactor

    # a private attribute of the redactor: it keeps the words, and exposes no reader of them
    return frozenset(getattr(redactor, "_known", ()))


def _written_words(text: str) -> set[str]:
    """Capitalised or all-capital words of ``text`` outside placeholders, lower-cased, hyphenated parts apart."""
    words = set()
    for word in WORD_RE.findall(PLACEHOLDER_RE.sub(" ", text)):
        for part in re.split(r"[-'’.]+", word):
            if part[:1].isupper() and part in (part.capitalize(), part.upper()):
                words.add(part.lower())
    return words


def _beside_a_name(text: str, word: str) -> bool:
    """``word`` (a label word) written as part of a name: next to a [NAME] ("[NAME] Page", "PAGE, [NAME]")."""
    forms = "|".join(re.escape(form) for form in (word.capitalize(), word.upper()))
    pattern = rf"\[NAME\][\s,]+(?:{forms})(?![A-Za-z])|(?<![A-Za-z])(?:{forms})[\s,.]+\[NAME\]"
    return re.search(pattern, text) is not None


def assert_masked(text: str, known_values: Iterable[str] = ()) -> None:
    """Raise UnmaskedText when ``text`` holds an e-mail, a phone, or a known or registered personal word.

    Registered words are looked for capitalised or in capitals, as names and places are written:
    mask_text turns every such word that is not a label into a placeholder, so one still there is a
    leak. A registered word that is also a label word ("City" of Kansas City, the surname "Page") counts
    only beside a [NAME], where it is part of a name rather than a label.
    """
    if EMAIL_RE.search(text):
        raise UnmaskedText("e-mail")
    if PHONE_RE.search(text):
        raise UnmaskedText("phone")
    for pattern, placeholder in _known_patterns(known_values):
        if pattern.search(PLACEHOLDER_RE.sub(" ", text)):
            raise UnmaskedText("known value" if placeholder == NAME else placeholder.strip("[]").lower())
    registered = registered_words()
    if not registered:
        return
    for word in _written_words(text) & registered:
        if word not in LABEL_WORDS or _beside_a_name(text, word):
            raise UnmaskedText("registered personal value")
