"""One error body for every 4xx/5xx: ``{"error": {"code", "message", "field"}}``.

Messages are ours or pydantic's description of the rule broken, never the value sent: a request
body carries a person, and an error may end up in a log or a browser console.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

CODES = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal",
    503: "unavailable",
}


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: unauthorized, not_found, invalid, conflict, rate_limited, ...")
    message: str = Field(description="what is wrong, without the value sent")
    field: str | None = Field(None, description="the request field at fault (dotted path), if any")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(HTTPException):
    def __init__(self, status: int, message: str, field: str | None = None, code: str | None = None, headers=None):
        super().__init__(status_code=status, detail=message, headers=headers)
        self.field = field
        self.code = code or CODES.get(status, "error")


def not_found(what: str = "scan") -> ApiError:
    return ApiError(404, f"no such {what}")


def error_response(status: int, message: str, field: str | None = None, code: str | None = None, headers=None):
    body = {"error": {"code": code or CODES.get(status, "error"), "message": message, "field": field}}
    return JSONResponse(body, status_code=status, headers=headers)


def error_responses(*statuses: int) -> dict:
    """OpenAPI ``responses`` entries documenting the error body for these statuses."""
    return {status: {"model": ErrorBody, "description": CODES.get(status, "error")} for status in statuses}


def field_of(location) -> str | None:
    """``("body", "person", "first_name")`` -> ``person.first_name``; list positions as ``emails[0]``."""
    parts = [p for p in location if p not in ("body", "query", "path", "header")] if location else []
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or (str(location[-1]) if location else None)


async def validation_error(request: Request, exc: RequestValidationError):
    errors = exc.errors()
    first = errors[0] if errors else {}
    location = first.get("loc") or ()
    field = field_of(location)
    if first.get("type") == "json_invalid":
        message, field = "the body is not valid JSON", None
    else:
        message = f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "invalid")
    if location and location[0] == "header" and field:
        field = field.replace("_", "-")
        message = f"{field}: {first.get('msg', 'invalid')}"
    return error_response(422, message, field)


async def http_error(request: Request, exc: HTTPException):
    if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8 JSON): the same as invalid JSON
        return error_response(422, "the body is not valid JSON")
    field = getattr(exc, "field", None)
    code = getattr(exc, "code", None)
    message = exc.detail if isinstance(exc.detail, str) else CODES.get(exc.status_code, "error")
    return error_response(exc.status_code, message, field, code, getattr(exc, "headers", None))


async def server_error(request: Request, exc: Exception):
    return error_response(500, "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
