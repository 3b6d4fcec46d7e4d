"""Plain ASGI middlewares (no per-request task or body copy): request size limit, security headers,
request metrics."""

from __future__ import annotations

import time

from starlette.datastructures import MutableHeaders

from crawler.api.errors import ApiError, error_response

API_PATHS = ("/api/", "/health", "/metrics", "/openapi.json")
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
# JSON and images of the API: nothing in them may run or be framed, nor be kept by a shared cache
API_HEADERS = (
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)


class BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodyLimit:
    """413 for a body over ``max_bytes``: at once from Content-Length, else while it streams in (the
    exception is an HTTPException so FastAPI's body reader passes it to the error handler)."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                response = error_response(413, f"the request body is larger than {self.max_bytes} bytes")
                return await response(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        api = scope["path"].startswith(API_PATHS)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS + (API_HEADERS if api else ()):
                    if name.decode() not in headers:
                        headers.append(name.decode(), value.decode())
            await send(message)

        await self.app(scope, receive, with_headers)


class RequestMetrics:
    """Counts requests by route template (``/api/scans/{scan_id}``, never the id) and status, and
    their latency (streams: until the response starts)."""

    def __init__(self, app, metrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def observed(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = scope.get("route")
                self.metrics.observe(getattr(route, "path", "unmatched"), scope["method"], status, start)
            await send(message)

        try:
            await self.app(scope, receive, observed)
        except Exception:
            route = scope.get("route")
            self.metrics.observe(getattr(route, "path", "unmatched"), scope["method"], 500, start)
            raise
