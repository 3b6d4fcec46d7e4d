"""``/api/heals``: healed site definitions waiting for a person (crawler/healing/versions.py).

A heal whose confidence did not clear ``HEAL_AUTO_ACCEPT`` is *quarantined*: the listings read under it
wait in ``held_findings``. Here an operator sees each one with its provenance and its diff against the
YAML it descends from, and accepts it (it becomes active, its held findings become findings) or rejects
it (they are deleted, crawls go back to its parent).

Deciding is not a scan owner's business: a heal changes what every user's scans read. Only keys whose
user is listed in ``API_OPERATORS`` may use these routes; any other valid key gets 403. The decision is
recorded with the key's user name (``decided_by``).
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, Field

from crawler.api.errors import ApiError, error_responses, not_found
from crawler.api.security import caller
from crawler.db.pool import run_in_transaction
from crawler.extraction.definitions import DEFAULT_DIRECTORY, DefinitionError, load_definition
from crawler.healing import versions

router = APIRouter(tags=["heals"])
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
SITE_FILE = re.compile(r"^[a-z0-9_-]{1,64}$")  # a site id that names a file in spiders/sites, nothing else
Status = Literal["pending", "quarantined", "active", "rejected", "superseded", "all"]
HELD_COUNT = "SELECT count(*) FROM held_findings WHERE website_id = %s AND definition_sha256 = %s"


def operators(settings) -> frozenset[str]:
    return frozenset(name.strip() for name in settings.getlist("API_OPERATORS") if name.strip())


async def operator(request: Request, user: Annotated[str, Depends(caller)]) -> str:
    """The key's user when it may decide heals; 403 otherwise (401/429 come from ``caller``)."""
    if user not in operators(request.app.state.settings):
        raise ApiError(403, "this key may not review heals (its user is not an operator)", code="forbidden")
    return user


Operator = Annotated[str, Depends(operator)]


class Heal(BaseModel):
    id: int
    site: str
    sha256: str = Field(description="the version's definition digest (first 12 hex digits)")
    parent: str = Field(description="the digest of the definition it was healed from (first 12 hex digits)")
    origin: Literal["yaml", "heuristic", "llm", "human"]
    status: Literal["active", "quarantined", "rejected", "superseded"]
    confidence: float
    fields: list[str] = Field(description="the changed fields, as kind.field")
    changes: dict[str, Any] = Field(description="per changed field: the old and new spec, score and margin")
    pages: int = Field(description="pages of the site the heal was verified on")
    held: int = Field(description="findings waiting for this version's decision (held_findings)")
    created_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    base: str | None = Field(description="the YAML the diff is against; null when the site has no YAML here")
    base_changed: bool = Field(description="the YAML was edited since the heal: the diff shows those edits too")
    diff: str = Field(description="unified diff of the YAML against this version (both as YAML)")


class HealList(BaseModel):
    heals: list[Heal]


class HealAccepted(BaseModel):
    heal: Heal
    released: int = Field(description="held findings moved into findings")


class HealRejected(BaseModel):
    heal: Heal
    deleted: int = Field(description="held findings deleted")


def base_yaml(site: str) -> tuple[str | None, dict, str | None]:
    """(path shown, raw definition, its sha256) of the site's YAML; (None, {}, None) without a readable one."""
    path = DEFAULT_DIRECTORY / f"{site}.yaml"
    if not SITE_FILE.match(site) or not path.is_file():
        return None, {}, None
    try:
        definition = load_definition(path)
    except (DefinitionError, OSError):
        return None, {}, None
    return f"spiders/sites/{site}.yaml", definition.raw, definition.sha256


def in_order_of(value, template):
    """``value`` with its mappings' keys in ``template``'s order (new keys after). A stored definition comes
    back from jsonb with its keys sorted by length; diffed as is, every reordered line would look changed."""
    if isinstance(value, dict) and isinstance(template, dict):
        keys = [k for k in template if k in value] + [k for k in value if k not in template]
        return {k: in_order_of(value[k], template.get(k)) for k in keys}
    if isinstance(value, list) and isinstance(template, list):
        return [in_order_of(v, template[i] if i < len(template) else None) for i, v in enumerate(value)]
    return value


async def heal_out(conn, version: versions.Version, yamls: dict) -> Heal:
    if version.site not in yamls:
        yamls[version.site] = base_yaml(version.site)
    shown, raw, sha = yamls[version.site]
    held = (await (await conn.execute(HELD_COUNT, [version.site, version.sha256])).fetchone())[0]
    summary = version.summary()
    return Heal(
        **{k: summary[k] for k in ("id", "site", "sha256", "parent", "origin", "status", "confidence", "fields")},
        changes=version.changes if isinstance(version.changes, dict) else {},
        pages=summary["pages"],
        held=held,
        created_at=version.created_at,
        decided_at=version.decided_at,
        decided_by=version.decided_by,
        base=shown,
        base_changed=sha is not None and sha != version.base_sha256,
        diff=versions.diff(replace(version, definition=in_order_of(version.definition, raw)), raw),
    )


async def _list(site: str | None, status: str | None, conn) -> HealList:
    found = await versions.listing(conn, site=site, status=status)
    yamls: dict = {}
    return HealList(heals=[await heal_out(conn, v, yamls) for v in found])


async def _get(version_id: int, conn) -> Heal:
    try:
        version = await versions.get(conn, version_id)
    except versions.VersionError:
        raise not_found("heal") from None
    return await heal_out(conn, version, {})


async def _decide(decide, version_id: int, user: str, conn) -> tuple[Heal, int]:
    try:
        await versions.get(conn, version_id)
    except versions.VersionError:
        raise not_found("heal") from None
    try:
        version, count = await decide(conn, version_id, user)
    except versions.VersionError as exc:
        raise ApiError(409, str(exc)) from None
    return await heal_out(conn, version, {}), count


@router.get(
    "/api/heals",
    response_model=HealList,
    summary="Healed site definitions, newest first (default: the quarantined ones waiting for a decision)",
    responses=error_responses(401, 403, 422, 429),
)
async def list_heals(
    request: Request,
    user: Operator,
    status: Annotated[Status, Query(description="pending (= quarantined, the default), a status, or all")] = "pending",
    site: Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")] = None,
):
    wanted = {"pending": "quarantined", "all": None}.get(status, status)
    return await run_in_transaction(request.app.state.settings, partial(_list, site, wanted))


@router.get(
    "/api/heals/{heal_id}",
    response_model=Heal,
    summary="One healed definition with its provenance and diff",
    responses=error_responses(401, 403, 404, 422, 429),
)
async def get_heal(heal_id: Id, request: Request, user: Operator):
    return await run_in_transaction(request.app.state.settings, partial(_get, heal_id))


@router.post(
    "/api/heals/{heal_id}/accept",
    response_model=HealAccepted,
    summary="Accept a quarantined (or rejected) heal: it becomes active, its held findings become findings",
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def accept_heal(heal_id: Id, request: Request, user: Operator):
    heal, released = await run_in_transaction(
        request.app.state.settings, partial(_decide, versions.accept, heal_id, user)
    )
    return HealAccepted(heal=heal, released=released)


@router.post(
    "/api/heals/{heal_id}/reject",
    response_model=HealRejected,
    summary="Reject a heal: its held findings are deleted and crawls go back to its parent",
    responses=error_responses(401, 403, 404, 409, 422, 429),
)
async def reject_heal(heal_id: Id, request: Request, user: Operator):
    heal, deleted = await run_in_transaction(
        request.app.state.settings, partial(_decide, versions.reject, heal_id, user)
    )
    return HealRejected(heal=heal, deleted=deleted)
