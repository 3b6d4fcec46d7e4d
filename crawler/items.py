"""Typed items, read through itemadapter.

A spider yields what it saw (PersonListing, EventBatch); pipelines turn items
into ``TableRows`` (rows ready for one COPY) that the PostgreSQL pipeline writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from crawler.db.writer import Checkpoint

# The datum kinds a finding can expose (findings.data_type).
DATA_TYPES = ("name", "email", "phone", "address", "relative", "age")


@dataclass
class PersonListing:
    """One person's listing on one site, as extracted (personal data in the clear:
    it exists only in memory until the encrypt pipeline seals it)."""

    site: str
    scan_id: str
    listing_url: str
    full_name: str
    age: int | None = None
    locations: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)
    relatives: list[str] = field(default_factory=list)
    confidence: float = 1.0
    screenshot_sha256: str | None = None

    def data(self) -> list[tuple[str, str]]:
        """(data_type, value) for every exposed datum, in DATA_TYPES order."""
        pairs = [("name", self.full_name)]
        pairs += [("email", v) for v in self.emails]
        pairs += [("phone", v) for v in self.phones]
        pairs += [("address", v) for v in self.addresses]
        pairs += [("relative", v) for v in self.relatives]
        if self.age is not None:
            pairs.append(("age", str(self.age)))
        return [(kind, value) for kind, value in pairs if value]


@dataclass
class EventBatch:
    """One page of records from an events API (one item per page, for volume)."""

    source: str
    events: list[dict[str, Any]]
    checkpoint: dict[str, Any] | None = None


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
