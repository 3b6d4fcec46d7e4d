"""Opt-out flows: a site definition's ``opt_out`` block as typed steps (format: spiders/sites/FORMAT.md).

The loader (crawler/extraction/definitions.py) has validated the block's shape and semantics by the
time ``flow_of`` turns it into a ``Flow``; here each step mapping becomes one small frozen object, so
the runner (crawler/removal/runner.py) dispatches on types, not on dict keys. Templates are the
search templates' ``{field|filter}`` syntax over ``flow_values``: the listing, the person, the
request's tagged address and reference, and the site's addresses.

A flow's ``sha256`` is the digest of its block: a request records it, and a changed flow restarts the
request at step 0 (unless this attempt's submission was made).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import urljoin, urlsplit

from crawler.extraction.templates import render

DEFAULT_CONFIRMATION_HOURS = 24.0


@dataclass(frozen=True)
class Selector:
    css: str | None = None
    xpath: str | None = None

    @classmethod
    def parse(cls, spec: dict) -> Selector:
        return cls(spec.get("css"), spec.get("xpath"))


@dataclass(frozen=True)
class Step:
    kind: ClassVar[str] = ""
    # a step that works on the page the steps before it opened
    needs_page: ClassVar[bool] = False
    # a step that reaches the broker with the request: made exactly once per attempt
    submission: ClassVar[bool] = False


@dataclass(frozen=True)
class Navigate(Step):
    kind: ClassVar[str] = "navigate"
    url: str
    moved_page: str | None = None
    moved_link: Selector | None = None


@dataclass(frozen=True)
class Fill(Step):
    kind: ClassVar[str] = "fill"
    needs_page: ClassVar[bool] = True
    # http: form field name -> template; browser: CSS selector -> template
    fields: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Click(Step):
    kind: ClassVar[str] = "click"
    needs_page: ClassVar[bool] = True
    target: Selector = field(default_factory=Selector)


@dataclass(frozen=True)
class Submit(Step):
    kind: ClassVar[str] = "submit"
    needs_page: ClassVar[bool] = True
    submission: ClassVar[bool] = True
    form: str | None = None  # the form (CSS); http: FormRequest.from_response(formcss=...)
    css: str | None = None  # browser: the button to click


@dataclass(frozen=True)
class Expect(Step):
    kind: ClassVar[str] = "expect"
    needs_page: ClassVar[bool] = True
    marker: tuple[dict, ...] = ()  # {text|css|xpath} each; any one present passes


@dataclass(frozen=True)
class EmailConfirmation(Step):
    kind: ClassVar[str] = "email_confirmation"
    sender: str = ""  # a part of the From the broker's mail has
    link: str = ""  # a part of the confirmation link
    within_hours: float = DEFAULT_CONFIRMATION_HOURS


@dataclass(frozen=True)
class SendEmail(Step):
    kind: ClassVar[str] = "send_email"
    submission: ClassVar[bool] = True
    to: str = ""
    subject: str = ""
    body: str = ""


@dataclass(frozen=True)
class Human(Step):
    kind: ClassVar[str] = "human"
    task: str = "other"  # captcha, phone, id_upload, other
    instructions: str = ""
    url: str | None = None


@dataclass(frozen=True)
class Flow:
    site: str
    base_url: str
    url: str  # the opt-out page, absolute
    render: str  # http | browser
    steps: tuple[Step, ...]
    captcha: tuple[dict, ...] = ()
    processing_days: float | None = None
    sha256: str = ""

    def submission_after(self, index: int) -> int | None:
        """The index of the first submission step at or after ``index``."""
        return next((i for i in range(index, len(self.steps)) if self.steps[i].submission), None)

    def last_navigate(self, before: int) -> int | None:
        return next(
            (i for i in range(min(before, len(self.steps)) - 1, -1, -1) if self.steps[i].kind == "navigate"), None
        )


def _markers(spec) -> tuple[dict, ...]:
    if not spec:
        return ()
    return tuple(spec if isinstance(spec, list) else [spec])


def parse_step(raw: dict) -> Step:
    """One validated step mapping ({kind: spec}) as its Step."""
    ((kind, spec),) = raw.items()
    if kind == "navigate":
        spec = {"url": spec} if isinstance(spec, str) else spec
        moved = spec.get("moved") or {}
        link = Selector.parse(moved["link"]) if moved else None
        return Navigate(spec["url"], moved.get("page"), link)
    if kind == "fill":
        return Fill(tuple(spec.items()))
    if kind == "click":
        return Click(Selector.parse(spec))
    if kind == "submit":
        return Submit((spec or {}).get("form"), (spec or {}).get("css"))
    if kind == "expect":
        return Expect(_markers(spec))
    if kind == "email_confirmation":
        return EmailConfirmation(
            spec["from"], spec["link"], float(spec.get("within_hours", DEFAULT_CONFIRMATION_HOURS))
        )
    if kind == "send_email":
        return SendEmail(spec["to"], spec["subject"], spec["body"])
    if kind == "human":
        return Human(spec["kind"], spec["instructions"], spec.get("url"))
    raise ValueError(f"unknown opt-out step kind {kind!r}")


def flow_sha256(opt_out: dict) -> str:
    return hashlib.sha256(json.dumps(opt_out, sort_keys=True, default=str).encode()).hexdigest()


def flow_of(definition) -> Flow | None:
    """The site's opt-out flow (its base_url as the definition has it), None without steps."""
    opt_out = definition.raw.get("opt_out") or {}
    if not opt_out.get("steps"):
        return None
    return Flow(
        site=definition.id,
        base_url=definition.base_url,
        url=absolute(definition.base_url, opt_out["url"]),
        render=opt_out.get("render", definition.render),
        steps=tuple(parse_step(step) for step in opt_out["steps"]),
        captcha=_markers(opt_out.get("captcha")),
        processing_days=opt_out.get("processing_days"),
        sha256=flow_sha256(opt_out),
    )


def absolute(base_url: str, url: str) -> str:
    """A path joined to the site's base_url; an absolute URL as it is."""
    if url.startswith("/"):
        return base_url.rstrip("/") + url
    return urljoin(base_url.rstrip("/") + "/", url)


def listing_path(listing_url: str) -> str:
    parts = urlsplit(listing_url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def flow_values(flow: Flow, listing_url: str, person, address: str, reference: str) -> dict[str, str]:
    """The template fields of one request (personal: in memory only, never logged)."""
    return {
        "listing_url": listing_url,
        "listing_path": listing_path(listing_url),
        "email": address,
        "reference": reference,
        "full_name": person.full_name if person else "",
        "first_name": person.first_name if person else "",
        "last_name": person.last_name if person else "",
        "city": person.city if person else "",
        "state": person.state if person else "",
        "base_url": flow.base_url,
        "opt_out_url": flow.url,
    }


def fill_in(template: str, values: dict) -> str:
    return render(template, values)


def url_of(flow: Flow, template: str, values: dict) -> str:
    """A step's URL template filled in and made absolute."""
    return absolute(flow.base_url, render(template, values))
