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


class RemovalRequested(BaseModel):
    id: int = Field(description="the listing's id")
    status: Literal["removal_requested"] = "removal_requested"


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
