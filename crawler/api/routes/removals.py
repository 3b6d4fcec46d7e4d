"""People in the loop: ``/api/removals`` (every listing's removal status with its history),
``/api/tasks`` (what a person must do, and ``done`` to resume the flow) and ``/api/reviews`` ("is
this you?" for listings the matcher scored in the review band).

Scoped to the key's user like the scans: another user's removal, task or review is not found.
Asking for a removal (``DELETE /api/findings/{id}``) and marking a task done queue the optout crawl
(crawler/worker/removal_jobs.py); the worker carries the request from there.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from crawler.api import cursors, models
from crawler.api.errors import ApiError, error_responses, not_found
from crawler.api.security import caller
from crawler.store import removal_flow, removal_views, removals, reviews
from crawler.worker.removal_jobs import defer_optout

logger = logging.getLogger(__name__)

router = APIRouter(tags=["removals"])
User = Annotated[str, Depends(caller)]
Id = Annotated[int, Path(ge=1, le=2**63 - 1)]


def task_out(task: removal_views.RemovalTask) -> models.TaskOut:
    return models.TaskOut(
        id=task.id,
        removal_id=task.request_id,
        kind=task.kind,
        instructions=task.instructions,
        url=task.url,
        created_at=task.created_at,
        done_at=task.done_at,
    )


def removal_out(view: removal_views.RemovalView) -> models.Removal:
    return models.Removal(
        id=view.id,
        site=view.site,
        listing_id=view.listing_id,
        scan_id=view.scan_id,
        url=view.url,
        status=view.status,
        attempt=view.attempt,
        step=view.step,
        reason=view.reason,
        created_at=view.created_at,
        updated_at=view.updated_at,
        submitted_at=view.submitted_at,
        confirmed_at=view.confirmed_at,
        removed_at=view.removed_at,
        next_action_at=view.next_action_at,
        history=[
            models.RemovalEvent(
                from_status=e.from_status,
                to_status=e.to_status,
                attempt=e.attempt,
                step=e.step,
                detail=e.detail if isinstance(e.detail, dict) else {},
                at=e.at,
            )
            for e in view.history
        ],
        task=task_out(view.task) if view.task is not None else None,
    )


async def queue_optout(settings) -> None:
    """Start the optout crawl soon. The request is stored either way: if queueing fails, the
    worker's removal tick finds the due request and queues it."""
    try:
        await defer_optout(settings)
    except Exception as exc:
        logger.warning("could not queue the optout crawl now (%s); the removal schedule will", type(exc).__name__)


async def removal_of(settings, owner: str, request_id: int) -> models.Removal:
    view = await removal_views.get_removal(settings, owner, request_id)
    if view is None:
        raise not_found("removal request")
    return removal_out(view)


async def request_listing_removal(settings, owner: str, finding_id: int) -> models.Removal:
    """DELETE /api/findings/{id} (crawler/api/routes/findings.py): the listing's one request."""
    request = await removals.request_removal(settings, owner, finding_id)
    if request is None:
        raise not_found("finding")
    await queue_optout(settings)
    return await removal_of(settings, owner, request.id)


@router.get(
    "/api/removals",
    response_model=models.RemovalList,
    summary="The caller's removal requests, newest first, each with its history and open task",
    responses=error_responses(401, 422, 429),
)
async def list_removals(
    request: Request,
    user: User,
    status: Annotated[models.RemovalStatus | None, Query(description="only requests in this status")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of the previous page")] = None,
):
    after = cursors.parse_removal_cursor(cursor) if cursor else None
    views = await removal_views.list_removals(request.app.state.settings, user, limit + 1, status, after)
    page = views[:limit]
    next_cursor = cursors.removal_cursor(page[-1].id) if len(views) > limit else None
    return models.RemovalList(removals=[removal_out(v) for v in page], next_cursor=next_cursor)


@router.get(
    "/api/removals/{removal_id}",
    response_model=models.Removal,
    summary="One removal request with its history",
    responses=error_responses(401, 404, 422, 429),
)
async def get_removal(removal_id: Id, request: Request, user: User):
    return await removal_of(request.app.state.settings, user, removal_id)


@router.get(
    "/api/tasks",
    response_model=models.TaskList,
    summary="What the caller must do for their removals (solve a CAPTCHA, call, upload an ID), newest first",
    responses=error_responses(401, 422, 429),
)
async def list_tasks(request: Request, user: User):
    tasks = await removal_views.list_tasks(request.app.state.settings, user, open_only=True)
    return models.TaskList(
        tasks=[
            models.TaskWithRemoval(
                **task_out(task).model_dump(),
                site=task.request.site if task.request else "",
                listing_url=task.request.url if task.request else None,
                email=removals.tagged_address(request.app.state.settings, task.request.reference)
                if task.request
                else "",
                removal_status=task.request.status if task.request else "needs_human",
            )
            for task in tasks
        ]
    )


@router.post(
    "/api/tasks/{task_id}/done",
    response_model=models.TaskDone,
    summary="Mark a task done: the removal flow resumes after it",
    responses=error_responses(401, 404, 409, 422, 429),
)
async def task_done(task_id: Id, request: Request, user: User):
    settings = request.app.state.settings
    request_id = await removal_views.task_request(settings, user, task_id)
    if request_id is None:
        raise not_found("task")
    if not await removal_flow.complete_task(settings, user, task_id):
        raise ApiError(409, "this task is done already")
    await queue_optout(settings)
    return models.TaskDone(id=task_id, removal=await removal_of(settings, user, request_id))


@router.get(
    "/api/reviews",
    response_model=models.ReviewList,
    summary='"Is this you?": listings the matcher was unsure about, decrypted for the caller',
    responses=error_responses(401, 422, 429),
)
async def list_reviews(request: Request, user: User):
    found = await reviews.list_reviews(request.app.state.settings, user)
    return models.ReviewList(
        reviews=[
            models.ReviewOut(
                id=review.id,
                site=review.site,
                scan_id=review.scan_id,
                url=review.listing.listing_url,
                confidence=round(review.confidence, 4),
                seen_at=review.seen_at,
                data=[models.Datum(type=f.data_type, value=f.value) for f in review.listing.findings()],
            )
            for review in found
        ]
    )


@router.post(
    "/api/reviews/{review_id}",
    response_model=models.ReviewAnswered,
    summary="Answer: yes makes the listing findings (its removal can be asked); no is never asked again",
    responses=error_responses(401, 404, 409, 413, 422, 429),
)
async def answer_review(review_id: Id, body: models.ReviewAnswer, request: Request, user: User):
    try:
        answered = await reviews.answer(request.app.state.settings, user, review_id, body.answer == "yes")
    except reviews.AlreadyAnswered:
        raise ApiError(409, "this listing was answered already") from None
    if answered is None:
        raise not_found("review")
    return models.ReviewAnswered(id=review_id, answer=answered.decision, listing_id=answered.listing_id)
