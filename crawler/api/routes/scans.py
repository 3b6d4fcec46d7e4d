"""``/api/scans``: start a scan, list them, one scan, cancel, live events."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from crawler.api import cursors, events, models, views
from crawler.api.errors import ApiError, error_responses, not_found
from crawler.api.security import caller
from crawler.store import scans as store
from crawler.store.people import InputError, check_person, person_arguments
from spiders.sites import SPIDERS

router = APIRouter(prefix="/api/scans", tags=["scans"])
User = Annotated[str, Depends(caller)]
ScanId = Annotated[uuid.UUID, "the scan's id"]
# spider argument (or CLI option) -> the request field that carries it
ARGUMENT_FIELDS = {"email": "person.emails", "phone": "person.phones", "--sites": "sites", "sites": "sites"}


def checked_person(settings, body: models.ScanRequest) -> dict:
    """The spider's parsed arguments for the request: the same rules as ``scrapy crawl -a``."""
    if body.sites is not None:
        for position, site in enumerate(body.sites):
            if site not in SPIDERS:
                known = ", ".join(sorted(SPIDERS))
                raise ApiError(422, f"sites[{position}]: unknown site (known: {known})", f"sites[{position}]")
    document = body.person.model_dump(exclude_none=True)
    try:
        arguments = person_arguments(document)
        return check_person(settings, "scan", arguments, ",".join(body.sites) if body.sites else None)
    except InputError as exc:
        argument, _, reason = str(exc).partition(": ")
        field = ARGUMENT_FIELDS.get(argument, f"person.{argument.lstrip('-')}")
        raise ApiError(422, f"{field}: {reason}", field) from None


@router.post(
    "",
    status_code=202,
    response_model=models.ScanCreated,
    summary="Start a scan",
    responses=error_responses(401, 409, 413, 422, 429),
)
async def create_scan(
    body: models.ScanRequest,
    request: Request,
    user: User,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            min_length=1,
            max_length=255,
            pattern=r"^[\x21-\x7e]+$",
            description="the same key with the same body returns the same scan (409 with another body)",
        ),
    ] = None,
):
    settings = request.app.state.settings
    parsed = checked_person(settings, body)
    try:
        scan_id, status, _ = await store.request_scan(
            settings,
            user,
            parsed["query"],
            parsed["site_ids"],
            body.priority,
            idempotency_key,
            body.model_dump(mode="json"),
        )
    except store.IdempotencyConflict:
        raise ApiError(409, "this Idempotency-Key was used with another request body", "Idempotency-Key") from None
    return models.ScanCreated(id=scan_id, status=status)


@router.get(
    "",
    response_model=models.ScanList,
    summary="The caller's scans, newest first",
    responses=error_responses(401, 422, 429),
)
async def list_scans(
    request: Request,
    user: User,
    status: Annotated[models.ScanStatus | None, Query(description="only scans in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
):
    after = cursors.parse_scan_cursor(cursor) if cursor else None
    rows = await store.list_scans(request.app.state.settings, user, limit + 1, status, after)
    page = rows[:limit]
    next_cursor = cursors.scan_cursor(page[-1].created_at, page[-1].id) if len(rows) > limit else None
    return models.ScanList(scans=[views.summary(scan) for scan in page], next_cursor=next_cursor)


@router.get(
    "/{scan_id}", response_model=models.ScanDetail, summary="One scan", responses=error_responses(401, 404, 422, 429)
)
async def get_scan(scan_id: ScanId, request: Request, user: User):
    scan = await store.get_scan(request.app.state.settings, user, str(scan_id))
    if scan is None:
        raise not_found()
    return views.detail(scan)


@router.post(
    "/{scan_id}/cancel",
    response_model=models.CancelResult,
    summary="Cancel a scan (a running one stops shortly after)",
    responses=error_responses(401, 404, 422, 429),
)
async def cancel_scan(scan_id: ScanId, request: Request, user: User):
    status = await store.cancel_owned_scan(request.app.state.settings, user, str(scan_id))
    if status is None:
        raise not_found()
    return models.CancelResult(id=scan_id, status=status)


@router.get(
    "/{scan_id}/events",
    response_class=StreamingResponse,
    summary="Live progress (Server-Sent Events), ending with `completed`",
    responses={
        200: {
            "description": events.__doc__.split("\n\n")[1],
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(401, 404, 422, 429),
    },
)
async def scan_events(scan_id: ScanId, request: Request, user: User):
    stream = events.ScanEventStream(request.app.state, user, str(scan_id))
    if not await stream.open():
        raise not_found()
    return StreamingResponse(
        stream.events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
