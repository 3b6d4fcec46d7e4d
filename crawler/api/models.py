"""Request and response bodies of the scans API (pydantic): what /openapi.json documents."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Priority = Literal["high", "normal", "low"]
ScanStatus = Literal["pending", "running", "completed", "failed", "cancelled"]
FindingStatus = Literal["found", "removal_requested", "removed", "reappeared", "dismissed"]
DataType = Literal["name", "email", "phone", "address", "relative", "age"]
Name = Annotated[str, Field(min_length=1, max_length=64)]
SiteId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")]


class Person(BaseModel):
    """Who to look for. First and last name are required; the rest narrows the match."""

    model_config = ConfigDict(extra="forbid")

    first_name: Name
    last_name: Name
    middle_name: Name | None = None
    city: Name | None = None
    state: str | None = Field(None, min_length=2, max_length=2, description="two-letter US state code")
    age: int | None = Field(None, ge=18, le=120)
    emails: list[Annotated[str, Field(min_length=3, max_length=254)]] = Field(
        default_factory=list, max_length=1, description="at most one for now"
    )
    phones: list[Annotated[str, Field(min_length=4, max_length=32)]] = Field(
        default_factory=list, max_length=1, description="at most one for now"
    )


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person: Person
    sites: list[SiteId] | None = Field(
        None, min_length=1, max_length=50, description="site ids; default: every enabled site"
    )
    priority: Priority = "normal"


class ScanCreated(BaseModel):
    id: uuid.UUID
    status: ScanStatus


class PersonOut(BaseModel):
    first_name: str
    last_name: str
    middle_name: str | None = None
    city: str | None = None
    state: str | None = None
    age: int | None = None
    emails: list[str] = []
    phones: list[str] = []


class Counts(BaseModel):
    listings: int = Field(0, description="candidates seen (accepted or rejected)")
    accepted: int = 0
    rejected: int = 0
    stored: int = Field(0, description="listings stored as findings")
    screenshots: int = 0
    errors: int = 0


class SiteProgress(Counts):
    site: str
    outcome: str | None = Field(
        None, description="found, no_match, no_results, partial or error (once the site has run)"
    )
    pages: dict[str, int] = {}
    errors_by_kind: dict[str, int] = {}
    blocks: dict[str, int] = {}


class ScanSummary(BaseModel):
    id: uuid.UUID
    status: ScanStatus
    priority: Priority
    sites: list[str]
    person: PersonOut | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ScanList(BaseModel):
    scans: list[ScanSummary]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last")


class ScanDetail(ScanSummary):
    updated_at: datetime
    duration_seconds: float | None = Field(None, description="started to finished (or to now while running)")
    attempts: int
    error: str | None
    cancel_requested: bool
    definitions: dict[str, str] = Field(description="site id -> sha256 of the site definition the scan ran with")
    progress: list[SiteProgress]
    counts: Counts
    errors_by_kind: dict[str, int]


class CancelResult(BaseModel):
    id: uuid.UUID
    status: ScanStatus


class Datum(BaseModel):
    type: DataType
    value: str


class Listing(BaseModel):
    id: int = Field(description="the listing's id (its smallest finding id)")
    site: str
    url: str
    confidence: float
    evidence: dict | None
    status: FindingStatus
    screenshot_url: str | None
    found_at: datetime
    data: list[Datum]


class FindingsPage(BaseModel):
    listings: list[Listing]
    next_cursor: str | None = None


RemovalStatus = Literal[
    "requested", "submitted", "awaiting_confirmation", "confirmed", "removed", "needs_human", "reappeared", "failed"
]
TaskKind = Literal["captcha", "phone", "id_upload", "other"]


class RemovalEvent(BaseModel):
    from_status: RemovalStatus | None = Field(description="null for the request's creation")
    to_status: RemovalStatus
    attempt: int
    step: int | None
    detail: dict = Field(description="what happened: reason, step kind, outcome (never personal data)")
    at: datetime


class TaskOut(BaseModel):
    id: int
    removal_id: int
    kind: TaskKind
    instructions: str = Field(description="what to do (from the site definition)")
    url: str | None = Field(description="where: the broker's page")
    created_at: datetime
    done_at: datetime | None = None


class Removal(BaseModel):
    """A listing's removal request: one per listing, carried through the site's opt-out flow and
    verified by re-scan."""

    id: int
    site: str
    listing_id: int | None = Field(description="the listing's id (as in a scan's findings)")
    scan_id: uuid.UUID = Field(description="the newest scan that found the listing")
    url: str | None = Field(description="the listing's URL")
    status: RemovalStatus
    attempt: int = Field(description="1 + the new requests after a reappearance or a failed verification")
    step: int = Field(description="the opt-out flow step to run next")
    reason: str | None = Field(description="why it failed or waits")
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    confirmed_at: datetime | None
    removed_at: datetime | None
    next_action_at: datetime | None = Field(description="when the flow looks at it again")
    history: list[RemovalEvent] = Field(description="every status change, oldest first")
    task: TaskOut | None = Field(description="the open task a person must do, if any")


# the DELETE /api/findings/{id} answer: the listing's removal request
RemovalRequested = Removal


class RemovalList(BaseModel):
    removals: list[Removal]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page; null on the last")


class TaskWithRemoval(TaskOut):
    site: str
    listing_url: str | None = Field(description="the listing the task is for")
    email: str = Field(
        description="the e-mail address to give the broker: this request's own (REMOVAL_EMAIL plus-tagged)"
    )
    removal_status: RemovalStatus


class TaskList(BaseModel):
    tasks: list[TaskWithRemoval]


class TaskDone(BaseModel):
    id: int
    removal: Removal


class ReviewOut(BaseModel):
    """A listing the matcher was not sure about: is this the person?"""

    id: int
    site: str
    scan_id: uuid.UUID
    url: str
    confidence: float
    seen_at: datetime
    data: list[Datum]


class ReviewList(BaseModel):
    reviews: list[ReviewOut]


class ReviewAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answer: Literal["yes", "no"]


class ReviewAnswered(BaseModel):
    id: int
    answer: Literal["yes", "no"]
    listing_id: int | None = Field(
        None, description="yes: the listing's id among the findings (DELETE /api/findings/{id} asks its removal)"
    )


class SiteStats(BaseModel):
    site: str
    runs: int
    success_rate: float | None
    mean_duration_seconds: float | None


class ListingsPerScan(BaseModel):
    scans: int = Field(description="completed scans")
    with_listings: int
    mean: float | None
    max: int


class QueueDepth(BaseModel):
    todo: int
    doing: int


class Stats(BaseModel):
    scans_by_status: dict[str, int]
    findings_by_type: dict[str, int]
    findings_by_site: dict[str, int]
    listings_by_site: dict[str, int]
    listings_per_scan: ListingsPerScan
    sites: list[SiteStats]
    queue: QueueDepth


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    api: Literal["ok"] = "ok"
    database: Literal["ok", "error"]
    redis: Literal["ok", "error", "not_configured"]
    worker_heartbeat_age_seconds: float | None
