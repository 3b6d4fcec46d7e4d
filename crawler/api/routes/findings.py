"""A scan's findings (listings decrypted for their owner), a listing's screenshot, removal requests."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from crawler.api import cursors, models, views
from crawler.api.errors import error_responses, not_found
from crawler.api.routes import removals
from crawler.api.security import caller
from crawler.store import findings as store

router = APIRouter(tags=["findings"])
User = Annotated[str, Depends(caller)]
FindingId = Annotated[int, Path(ge=1, le=2**63 - 1, description="a finding's (or listing's) id")]


@router.get(
    "/api/scans/{scan_id}/findings",
    response_model=models.FindingsPage,
    summary="The scan's listings, every exposed datum decrypted",
    responses=error_responses(401, 404, 422, 429),
)
async def scan_findings(
    scan_id: uuid.UUID,
    request: Request,
    user: User,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
):
    after = cursors.parse_listing_cursor(cursor) if cursor else None
    page = await store.list_listings(request.app.state.settings, user, str(scan_id), limit, after)
    if page is None:
        raise not_found()
    next_cursor = cursors.listing_cursor(*page.listings[-1].cursor) if page.more else None
    return models.FindingsPage(listings=[views.listing(item) for item in page.listings], next_cursor=next_cursor)


@router.get(
    "/api/findings/{finding_id}/screenshot",
    response_class=Response,
    summary="The listing's screenshot (PNG), decrypted for its owner",
    responses={
        200: {"description": "the PNG", "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **error_responses(401, 404, 422, 429),
    },
)
async def screenshot(finding_id: FindingId, request: Request, user: User):
    png = await store.load_screenshot(request.app.state.settings, user, finding_id)
    if png is None:
        raise not_found("screenshot")
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


@router.delete(
    "/api/findings/{finding_id}",
    status_code=202,
    response_model=models.RemovalRequested,
    summary="Request the removal of the finding's listing: its one removal request (idempotent)",
    responses=error_responses(401, 404, 422, 429),
)
async def request_removal(finding_id: FindingId, request: Request, user: User):
    return await removals.request_listing_removal(request.app.state.settings, user, finding_id)
