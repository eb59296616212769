"""Limits a client can run into: reported by GET /v1/limits, and the JSON body cap."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import problem_response
from app.settings import Settings, get_settings

router = APIRouter(tags=["service"])


@router.get("/v1/limits")
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
    }


class _BodyTooLarge(Exception):
    pass


class JsonBodyLimit:
    """Cap non-multipart request bodies (uploads have their own, streaming limit)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if headers.get(b"content-type", b"").startswith(b"multipart/"):
            await self.app(scope, receive, send)
            return
        limit = get_settings().max_json_bytes
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _BodyTooLarge:
            await self._reject(scope, receive, send, limit)

    @staticmethod
    async def _reject(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            413,
            "request_too_large",
            "Request too large",
            f"JSON bodies are limited to {limit} bytes",
        )
        await response(scope, receive, send)
