"""Limits a client can run into: reported by GET /v1/limits, and enforced on request bodies.

`RequestGate` sits in front of the whole app. On /v1 with API keys on, a request without a Bearer
key is answered 401 before a byte of its body is read. Any body is capped at the JSON limit,
whatever its content type, except on the two upload endpoints: those stream the file to disk under
their own limit, and read nothing before the key is checked. A body that stalls is answered 408.
So an unauthenticated client can make the API buffer at most `max_json_bytes` per connection.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import UnauthorizedProblem, problem_response, response_for
from app.jobs.schemas import MAX_INPUT_DIM, MAX_INPUT_ELEMENTS
from app.settings import Settings, get_settings

router = APIRouter(tags=["service"])

# The only endpoints whose body may be larger than a JSON document: each streams a multipart
# upload to disk, capped by max_upload_bytes, and only after the caller's key was checked.
UPLOAD_ENDPOINTS = frozenset({("POST", "/v1/models"), ("POST", "/v1/datasets")})


def _is_upload_content(method: str, path: str) -> bool:
    """PUT /v1/uploads/{id}/content: a file's bytes, authorised by the token in its URL (no key),
    capped by max_upload_bytes where it is received."""
    parts = path.split("/")
    return (
        method == "PUT"
        and len(parts) == 5
        and parts[:3] == ["", "v1", "uploads"]
        and (parts[4] == "content")
    )


@router.get("/v1/limits", operation_id="getLimits")
def limits(settings: Annotated[Settings, Depends(get_settings)]) -> dict[str, Any]:
    """Every limit this deployment enforces, so clients can stay under them."""
    return {
        "max_upload_bytes": settings.max_upload_bytes,
        "max_json_bytes": settings.max_json_bytes,
        "max_models_per_tenant": settings.max_models_per_tenant,
        "max_active_jobs_per_tenant": settings.max_active_jobs_per_tenant,
        "job_submissions_per_minute": settings.job_submissions_per_minute,
        "job_time_limit_s": settings.job_time_limit_s,
        "job_memory_limit_mb": settings.job_memory_limit_mb,
        "max_attempts": settings.max_attempts,
        "max_passes_per_recipe": 16,
        "max_benchmark_runs": 10_000,
        "max_input_dim": MAX_INPUT_DIM,
        "max_input_elements": MAX_INPUT_ELEMENTS,
        "body_read_timeout_s": settings.body_read_timeout_s,
    }


class BodyTooLargeError(HTTPException):
    """Raised from `receive`: FastAPI lets an HTTPException through where it would turn any other
    error while reading a body into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is over the limit of {limit} bytes: only POST /v1/models and "
            "POST /v1/datasets take uploads",
        )


class BodyTimeoutError(HTTPException):
    def __init__(self, timeout_s: float) -> None:
        # Connection: close, or the stalled client would keep its connection and its worker slot.
        super().__init__(
            408,
            f"the request body stalled: nothing arrived for {timeout_s:g} s",
            headers={"Connection": "close"},
        )


def _has_bearer_key(headers: Headers) -> bool:
    """The check HTTPBearer makes, without its verdict on the key itself."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and bool(key.strip())


def _declared_length(headers: Headers) -> int | None:
    declared = headers.get("content-length", "")
    return int(declared) if declared.isdigit() else None


class RequestGate:
    """Refuse keyless /v1 requests unread, cap and time every request body (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = get_settings()
        headers = Headers(scope=scope)
        path = scope["path"]
        is_api = path == "/v1" or path.startswith("/v1/")
        is_content = _is_upload_content(scope["method"], path)
        if is_api and settings.auth_enabled and not is_content and not _has_bearer_key(headers):
            problem = UnauthorizedProblem("send an API key as 'Authorization: Bearer <key>'")
            await response_for(problem)(scope, receive, send)
            return
        is_upload = is_content or (scope["method"], path) in UPLOAD_ENDPOINTS
        limit = None if is_upload else settings.max_json_bytes
        declared = _declared_length(headers)
        if limit is not None and declared is not None and declared > limit:
            detail = BodyTooLargeError(limit).detail
            too_large = problem_response(413, "request_too_large", "Request too large", detail)
            await too_large(scope, receive, send)
            return
        body = _BodyReader(receive, limit, settings.body_read_timeout_s)
        await self.app(scope, body.receive, send)


class _BodyReader:
    """The app's `receive`: counts the body against the cap, and times each wait for a chunk."""

    def __init__(self, receive: Receive, limit: int | None, timeout_s: float) -> None:
        self._receive, self._limit, self._timeout_s = receive, limit, timeout_s
        self._seen = 0
        self._finished = False

    async def receive(self) -> Message:
        if self._finished:
            # The body is in: later calls only wait for a disconnect, which may take any time.
            return await self._receive()
        try:
            with anyio.fail_after(self._timeout_s):
                message = await self._receive()
        except TimeoutError:
            raise BodyTimeoutError(self._timeout_s) from None
        if message["type"] != "http.request":
            self._finished = True
            return message
        self._seen += len(message.get("body", b""))
        self._finished = not message.get("more_body", False)
        if self._limit is not None and self._seen > self._limit:
            raise BodyTooLargeError(self._limit)
        return message
