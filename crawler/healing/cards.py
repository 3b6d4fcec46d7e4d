"""Result-page cards found again when their selector finds nothing: the repeating nodes that hold one
detail link each, or the elements of a JSON-LD ItemList.

Every ancestor of a link that holds that one link only is a candidate (the cell, the row, the row group),
grouped by (the link's kind, the ancestor's step) over the pages; the card is the highest such level on
pages listing several results, like the remembered card, holding links like the remembered detail links;
on pages of one result each, what cards usually are decides (a row, an item, never the table around it).
"""

from __future__ import annotations

from crawler.healing.fingerprint import fingerprint, similarity, step
from crawler.healing.relocate import Proposal
from crawler.healing.values import char_classes

_LINK_TAGS = ("a", "tr", "tbody", "div", "li", "article", "section")
# a card is a row, an item, an article; a table, a list or a page section holds cards
_CARD_TAGS = {"tr": 0.3, "li": 0.3, "article": 0.3, "tbody": 0.2, "div": 0.1}
_CARD_TAGS.update(dict.fromkeys(("table", "ul", "ol", "dl", "main", "section", "form", "header", "nav"), -1.0))
_LINK_ATTRS = ("href", "data-url", "data-link", "data-href")


def _link_kind(element) -> tuple[str, str]:
    """A link's structural identity: its step and the first directory of its target ("/person/..." and
    "/phone/..." are different links; a one-segment path, often a person's slug, has none)."""
    target = next((element.get(a) for a in _LINK_ATTRS if element.get(a)), "")
    path = target.split("://", 1)[-1].split("?", 1)[0]
    segments = [s for s in path.split("/") if s]
    if "://" in target:
        segments = segments[1:]
    return step(element), segments[0] if len(segments) > 1 else ""


def _above_list(card) -> bool:
    """The link in the card sits in a table or a list inside the card."""
    link = next((x for x in card.iter(*_LINK_TAGS) if any(x.get(a) for a in _LINK_ATTRS)), None)
    node = link.getparent() if link is not None and link is not card else None
    while node is not None and node is not card:
        if node.tag in ("table", "ul", "ol"):
            return True
        node = node.getparent()
    return False


def _target_path(element) -> str:
    """The path of the link a node is or holds (scheme and host left out)."""
    link = (
        element
        if any(element.get(a) for a in _LINK_ATTRS)
        else next((x for x in element.iter(*_LINK_TAGS) if any(x.get(a) for a in _LINK_ATTRS)), None)
    )
    if link is None:
        return ""
    target = next(link.get(a) for a in _LINK_ATTRS if link.get(a))
    return "/" + target.split("://", 1)[1].split("/", 1)[-1] if "://" in target else target


def _card_groups(responses: list) -> dict[tuple, list]:
    """Candidate card groups: every ancestor of a link that holds that one link of its kind only (the
    cell, the row, the row group...), grouped by (the link's kind, the ancestor's step) across pages;
    each member marked when it is the highest such ancestor on a page listing several such links."""
    groups: dict[tuple, list] = {}
    for unit, response in enumerate(responses):
        links = [a for a in response.selector.root.iter(*_LINK_TAGS) if any(a.get(n) for n in _LINK_ATTRS)]
        by_kind: dict[tuple, list] = {}
        for link in links:
            by_kind.setdefault(_link_kind(link), []).append(link)
        for kind, same in by_kind.items():
            ids = {id(x) for x in same}
            for link in same:
                node, levels = link, []
                while node is not None and node.tag not in ("body", "html", "main"):
                    if sum(1 for x in node.iter(*_LINK_TAGS) if id(x) in ids) != 1:
                        break
                    levels.append(node)
                    node = node.getparent()
                for level in levels:
                    top = level is levels[-1] and len(same) > 1
                    groups.setdefault((kind, step(level)), []).append((unit, level, top))
    return groups


def relocate_cards(responses: list, card_memory: dict | None, url_memory: dict | None = None) -> Proposal | None:
    """The card: on every page, repeated, the highest level that holds one link of its kind (a row, not
    its name cell), most like the remembered card; the largest on a tie. Links whose targets look like
    the detail links the memory saw (their character classes) are preferred to others (phone links)."""
    groups = _card_groups(responses)
    url_classes = set(((url_memory or {}).get("signature") or {}).get("classes") or [])
    likeness: dict[tuple, float] = {}
    if url_classes:
        for key, members in groups.items():
            if key[0] not in likeness:
                targets = [_target_path(node) for _, node, _ in members if _target_path(node)]
                alike = sum(set(char_classes(t)) == url_classes for t in targets)
                likeness[key[0]] = 0.5 if targets and alike * 2 > len(targets) else -0.5
    prints = (card_memory or {}).get("prints") or []
    ranked = []
    for key, members in groups.items():
        units = {u for u, _, _ in members}
        if len(units) < len(responses):
            continue
        cards = [c for _, c, _ in members]
        score = 1.0 + 1.0 * (sum(top for _, _, top in members) / len(members))
        # pages of one result each do not tell the row from the table: what cards usually are decides
        link_tag, card_tag = key[0][0].split(".")[0], key[1].split(".")[0]
        if link_tag != "a" and key[0][0] == key[1]:
            score += 0.5  # the element that carries the detail link in an attribute is the card
        score += _CARD_TAGS.get(card_tag, 0.0) + likeness.get(key[0], 0.0)
        if any(_above_list(card) for card in cards[:3]):
            score -= 1.0  # a level holding the table or list the link sits in holds all the cards
        if prints:
            score += 0.5 * max(similarity(fingerprint(cards[0]), p) for p in prints)
        score += min(1.0, len(cards) / (3 * len(responses))) * 0.5  # a list repeats
        size = sum(len(list(c.iter())) for c in cards) / len(cards)
        ranked.append((round(score, 3), size, key, cards))
    if not ranked:
        return None
    ranked.sort(key=lambda r: (r[0], r[1]), reverse=True)
    for best_score, _size, key, cards in ranked[:3]:
        query = _card_query(cards[0], cards, responses)
        if query is None:
            continue
        runner = next((r[0] for r in ranked if r[2][0] != key[0]), 0.0)
        return Proposal(
            "_card",
            query,
            round(min(1.0, best_score / 3), 3),
            round((best_score - runner) / 3, 3),
            len(responses),
            len(responses),
        )
    return None


def _card_query(sample, cards: list, responses: list) -> dict | None:
    wanted = {id(c) for c in cards}
    candidates = [f"{sample.tag}.{c}" for c in sample.get("class", "").split()] + [step(sample)]
    parent = sample.getparent()
    if parent is not None:
        candidates += [f"{step(parent)} > {sample.tag}", f"{parent.tag} > {sample.tag}"]
    for query in candidates:
        try:
            selected = [s.root for r in responses for s in r.css(query)]
        except ValueError:
            continue
        if {id(e) for e in selected} == wanted and len(selected) == len(cards):
            return {"css": query}
    return None


def jsonld_cards(responses: list) -> Proposal | None:
    from crawler.extraction import paths

    for response in responses[:1]:
        for block in paths.jsonld_blocks(response):
            if "itemlist" in paths.types_of(block):
                for key in ("itemListElement",):
                    if isinstance(block.get(key), list) and block[key]:
                        spec = {"jsonld": {"type": "ItemList", "path": key}}
                        return Proposal("_card", spec, 0.7, 0.3, len(responses), len(responses))
    return None
