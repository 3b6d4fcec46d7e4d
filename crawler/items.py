"""Typed items, read through itemadapter.

A spider yields what it saw (PersonListing, EventBatch); pipelines turn items
into ``TableRows`` (rows ready for one COPY) that the PostgreSQL pipeline writes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

# The datum kinds a finding can expose (findings.data_type).
DATA_TYPES = ("name", "email", "phone", "address", "relative", "age")


@dataclass(frozen=True)
class Finding:
    """One exposed datum of a listing, in the clear (sealed by the encrypt pipeline)."""

    data_type: str  # one of DATA_TYPES
    value: str


@dataclass
class PersonListing:
    """One person's listing on one site, as extracted (personal data in the clear:
    it exists only in memory until the encrypt pipeline seals it)."""

    site: str
    scan_id: str
    listing_url: str
    full_name: str
    age: int | None = None
    # when a site shows only a range ("in their 40s": 40, 49) or a birth year
    age_range: tuple[int, int] | None = None
    birth_year: int | None = None
    birth_month: int | None = None
    # other names the listing shows (nicknames, maiden names, misspellings)
    aliases: list[str] = field(default_factory=list)
    # "City, ST" of current and past addresses
    locations: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    relatives: list[str] = field(default_factory=list)
    # the scan's target, not a rejected candidate: set by the match pipeline (the matcher's
    # decision, or True where the spider's own search decided). The one acceptance flag:
    # only accepted listings get a screenshot
    accepted: bool = False
    # set by the match pipeline: how sure we are that the listing is the scan's target
    confidence: float = 1.0
    # set by the match pipeline on an accepted listing: per-field agreement levels and weights
    # (crawler.matching), never personal values; stored with its findings
    evidence: dict | None = None
    # full-page PNG of the listing (evidence); the screenshots pipeline stores it
    # encrypted and replaces it by its sha256
    screenshot: bytes | None = None
    screenshot_sha256: str | None = None
    # set by fuzzy dedup: listings of the same person share a group
    listing_group: str | None = None
    # the site definition version it was read with (a heal's sha256, else None: the scan's YAML);
    # held: that version is quarantined, so its findings wait in held_findings for a person
    definition_sha256: str | None = None
    held: bool = False
    # run once this listing's rows are committed (e.g. marking a dedup fingerprint)
    on_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    def findings(self) -> list[Finding]:
        """Every exposed datum, in DATA_TYPES order."""
        pairs = [("name", self.full_name)]
        pairs += [("email", v) for v in self.emails]
        pairs += [("phone", v) for v in self.phones]
        pairs += [("address", v) for v in self.addresses]
        pairs += [("relative", v) for v in self.relatives]
        if self.age is not None:
            pairs.append(("age", str(self.age)))
        return [Finding(kind, value) for kind, value in pairs if value]


@dataclass
class RejectedCandidate:
    """A listing the match pipeline judged not to be the scan's target, kept for audit.

    Only the listing URL is personal (the encrypt pipeline seals it); the evidence holds
    agreement levels and weights per field, never values."""

    site: str
    scan_id: str
    listing_url: str
    confidence: float
    threshold: float
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Screenshot:
    """Evidence captured on its own (e.g. from a browser callback)."""

    png: bytes
    scan_id: str
    site: str


@dataclass
class Checkpoint:
    """Where an ingestion partition stands once the rows it came with are committed (BulkWriter
    writes it in the same transaction as those rows). Defined here, not in the writer, so that
    items (and the spiders and extraction engine that make them) do not load the database layer."""

    source: str
    partition_key: str
    cursor: str | None = None
    position_at: Any = None  # datetime of the last committed record
    rows: int = 0  # rows this checkpoint adds to rows_committed
    completed: bool = False
    state: dict[str, Any] = field(default_factory=dict)

    def merge(self, later: Checkpoint) -> Checkpoint:
        """The newer position, with row counts summed; a completed partition stays completed at its
        end (an earlier page crawled again, from a returned lease, does not reopen it)."""
        return replace(self if self.completed else later, rows=self.rows + later.rows)


@dataclass
class EventBatch:
    """One page of records from an events API (one item per page, for volume)."""

    source: str
    events: list[dict[str, Any]]
    # field names, when the spider knows them; else detected from the first event
    id_field: str | None = None
    type_field: str | None = None
    time_field: str | None = None
    # committed in the same transaction as this batch's rows
    checkpoint: Checkpoint | None = None


@dataclass
class TableRows:
    """Rows for one table, written by one COPY + INSERT ... ON CONFLICT DO NOTHING."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    # where the rows come from (site id, API name): scan counters and stats use it
    source: str = ""
    # an ingestion checkpoint committed in the same transaction as these rows
    checkpoint: Checkpoint | None = None
    # rows a dedup filter has never seen: the writer may COPY them straight in
    fresh_rows: list[tuple[Any, ...]] = field(default_factory=list)
    # run once these rows are committed
    on_commit: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)
