"""The outermost ASGI layer: a request id on every response, one log line and one histogram
observation per request."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logging import get_logger, request_context
from app.observability.metrics import HTTP_REQUEST_DURATION

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
UNMATCHED_ROUTE = "unmatched"

log = get_logger("modelpress.http")


def request_id_for(given: str | None) -> str:
    """The caller's id when it is a sane token (echoed back), else a new one."""
    if given and _SANE_REQUEST_ID.fullmatch(given):
        return given
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/v1/jobs/{job_id}`): bounded label values."""
    route: Any = scope.get("route")
    if isinstance(getattr(route, "path", None), str):
        return str(route.path)  # an API route
    if "endpoint" not in scope:
        return UNMATCHED_ROUTE
    # Starlette's own routes (/openapi.json, /docs) have fixed paths; a mount (static files)
    # names its prefix, never the file.
    mounted = scope.get("root_path", "")
    return f"{mounted}/{{path}}" if mounted else str(scope["path"])


class RequestObservation:
    """Wraps the whole app, error handling included, so a 500 carries its request id too."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_for(Headers(scope=scope).get(REQUEST_ID_HEADER))
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        with request_context(request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                HTTP_REQUEST_DURATION.labels(
                    method=scope["method"], route=route, status=str(status)
                ).observe(elapsed)
                log.info(
                    "request",
                    method=scope["method"],
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
