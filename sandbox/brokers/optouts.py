"""A broker's opt-out state: submissions per listing, confirmations, removals and re-listings.

Every broker site holds one ``OptOuts`` (``Site.optouts``); its own pages decide what counts as a
submission (a form POST, a JSON call, a letter to its privacy address), this module decides what follows:

- Submissions are counted per listing path, every one of them (a duplicate too, even for a listing
  already gone), so tests and the bench can check that each listing was submitted exactly once.
- Processing: ``optout_processing_seconds`` (the site's config, read when asked, so a test may shorten
  it while a request is pending) after the submission, or after the confirmation where the site asks
  for one (``needs_confirmation``: a token whose link is valid ``optout_link_seconds``), the listing is
  removed: ``hidden(person)`` is then true and the site answers as for an unknown id.
- Data refresh: where the site has ``relist_share`` (0..1), that share of removed listings, chosen per
  person with ``common.digest`` (the same people on every run), comes back ``relist_seconds`` after the
  removal, at the same URL. Once only: a listing removed again after its re-listing stays removed.
- States move lazily (``settle``) on the injectable ``clock``, so nothing runs in the background and a
  unit test drives time by hand. A lock guards the state: a broker's privacy inbox may be handed mail
  by a thread (an SMTP server's).

``install(app, site, listing_url)`` adds, on every broker: ``GET /__optouts`` (never counted or limited)::

    {"site", "submissions": {path: n}, "confirmed": [path], "removed": [path], "relisted": [path],
     "pending": [path], "unmatched": n}

(``removed``: gone now; ``relisted``: came back at least once; ``pending``: submitted, not yet removed;
``unmatched``: requests naming no listing of the site, the e-mail broker's), and
``POST /_sandbox/optouts/submit {"url": path or URL}``: a person did the whole opt-out by hand (a CAPTCHA
solved, a phone call made): counted as a submission, processing starts at once. ``POST
/_sandbox/optouts/solve`` hands out a one-use solved-CAPTCHA token (``captcha_solved`` accepts it), for
a test that plays the human in the page itself.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from aiohttp import web

from sandbox.brokers.common import digest, person_key
from sandbox.population import Person

if TYPE_CHECKING:
    from sandbox.brokers.control import Site

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z0-9-]+")
WAITING, PROCESSING, REMOVED, RELISTED = "waiting", "processing", "removed", "relisted"


def valid_email(address: str) -> bool:
    return EMAIL.fullmatch(address.strip()) is not None


def listing_path(url: str) -> str:
    """The path of a listing URL (absolute or already a path), percent-decoded, without a trailing slash."""
    path = unquote(urlsplit(url.strip()).path)
    return path.rstrip("/") or "/"


@dataclass
class Entry:
    person: Person
    state: str  # WAITING (for the confirmation), PROCESSING, REMOVED or RELISTED
    since: float  # when the current state began
    relisted: bool = False  # came back once already: the next removal is for good


@dataclass
class Token:
    path: str
    issued: float
    used: bool = False


class OptOuts:
    """One site's opt-out state; ``config`` gives the site's current config (keys as the module says)."""

    def __init__(self, site_id: str, config: Callable[[], dict], clock: Callable[[], float] = time.monotonic):
        self.site_id, self.config, self.clock = site_id, config, clock
        self.lock = threading.Lock()
        self.by_path: dict[str, Person] = {}  # listing path -> person (``index``)
        self.clear()

    def clear(self) -> None:
        """Forget everything (``POST /_sandbox/config {"reset": true}``)."""
        with self.lock:
            self.submissions: Counter[str] = Counter()
            self.entries: dict[str, Entry] = {}
            self.confirmed: list[str] = []
            self.tokens: dict[str, Token] = {}
            self.solved: set[str] = set()
            self.unmatched = 0

    def index(self, people: list[Person], listing_url: Callable[[Person], str | None]) -> None:
        self.by_path = {path: p for p in people if (path := listing_url(p))}

    def find(self, url: str) -> tuple[str, Person] | None:
        """(path, person) of one of the site's listings named by ``url`` (removed ones too), else None."""
        path = listing_path(url)
        person = self.by_path.get(path)
        return (path, person) if person is not None else None

    # ---- time ----------------------------------------------------------------------------------------

    def relists(self, person: Person) -> bool:
        share = self.config().get("relist_share", 0)
        return digest(self.site_id, "relist", person_key(person)) < share * 2**64

    def settle(self) -> None:
        """Move every entry as far as the clock says: processing -> removed -> (maybe) relisted."""
        with self.lock:
            self._settle()

    def _settle(self) -> None:  # the lock held
        now, config = self.clock(), self.config()
        processing = config.get("optout_processing_seconds", 0)
        for entry in self.entries.values():
            if entry.state == PROCESSING and now >= entry.since + processing:
                entry.state, entry.since = REMOVED, entry.since + processing
            if (
                entry.state == REMOVED
                and not entry.relisted
                and self.relists(entry.person)
                and now >= entry.since + config.get("relist_seconds", 0)
            ):
                entry.state, entry.since, entry.relisted = RELISTED, entry.since + config["relist_seconds"], True

    def hidden(self, person: Person) -> bool:
        """Whether the listing is gone (the site then answers as for an unknown id)."""
        return person.id in self.hidden_ids()

    def hidden_ids(self) -> set[str]:
        with self.lock:
            self._settle()
            return {e.person.id for e in self.entries.values() if e.state == REMOVED}

    # ---- what the site's pages call --------------------------------------------------------------------

    def submit(self, path: str, person: Person, *, needs_confirmation: bool = False) -> str:
        """Count a submission; start processing (or wait for the confirmation). Returns the entry's state."""
        with self.lock:
            self._settle()
            self.submissions[path] += 1
            entry = self.entries.get(path)
            if entry is None or entry.state in (RELISTED, WAITING):
                state = WAITING if needs_confirmation else PROCESSING
                relisted = entry.relisted if entry else False
                entry = self.entries[path] = Entry(person, state, self.clock(), relisted)
            return entry.state

    def issue_token(self, path: str) -> str:
        """A confirmation token for the listing's waiting request (the link valid ``optout_link_seconds``)."""
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = Token(path, self.clock())
        return token

    def confirm(self, token: str) -> str:
        """ "unknown", "expired", "already" (confirmed before) or "confirmed" (processing starts now)."""
        with self.lock:
            self._settle()
            issued = self.tokens.get(token)
            if issued is None:
                return "unknown"
            if issued.used:
                return "already"
            if self.clock() > issued.issued + self.config().get("optout_link_seconds", 0):
                return "expired"
            issued.used = True
            entry = self.entries.get(issued.path)
            if entry is None or entry.state != WAITING:  # another link of the same listing came first
                return "already"
            entry.state, entry.since = PROCESSING, self.clock()
            self.confirmed.append(issued.path)
            return "confirmed"

    def solve_captcha(self) -> str:
        token = "solved-" + secrets.token_urlsafe(18)
        with self.lock:
            self.solved.add(token)
        return token

    def captcha_solved(self, token: str) -> bool:
        """Whether ``token`` is a solved CAPTCHA's (one use)."""
        with self.lock:
            if token in self.solved:
                self.solved.discard(token)
                return True
        return False

    def count_unmatched(self) -> None:
        with self.lock:
            self.unmatched += 1

    def snapshot(self) -> dict:
        with self.lock:
            self._settle()
            entries = sorted(self.entries.items())
            return {
                "site": self.site_id,
                "submissions": dict(sorted(self.submissions.items())),
                "confirmed": list(self.confirmed),
                "removed": [p for p, e in entries if e.state == REMOVED],
                "relisted": [p for p, e in entries if e.relisted],
                "pending": [p for p, e in entries if e.state in (WAITING, PROCESSING)],
                "unmatched": self.unmatched,
            }


# ---- the endpoints every broker gets -----------------------------------------------------------------


def install(app: web.Application, site: Site, listing_url: Callable[[Person], str | None]) -> None:
    site.optouts.index(site.people, listing_url)

    async def report(_request: web.Request) -> web.Response:
        return web.json_response(site.optouts.snapshot())

    async def submit_by_hand(request: web.Request) -> web.Response:
        try:
            data = await request.json()
        except ValueError:
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return web.json_response({"error": 'expected {"url": listing path or URL}'}, status=400)
        found = site.optouts.find(data["url"])
        if found is None:
            return web.json_response({"error": "url: not a listing of this site"}, status=404)
        state = site.optouts.submit(*found)
        return web.json_response({"listing": found[0], "state": state})

    async def solve(_request: web.Request) -> web.Response:
        return web.json_response({"token": site.optouts.solve_captcha()})

    app.router.add_get("/__optouts", report)
    app.router.add_post("/_sandbox/optouts/submit", submit_by_hand)
    app.router.add_post("/_sandbox/optouts/solve", solve)
