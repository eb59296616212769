"""Conditional GETs: a strong ETag from the body's hash, and 304 when the caller has that body.

A poller that sends back the ETag it got is answered 304 with no body until the resource changes.
"""

from __future__ import annotations

import hashlib

from fastapi import Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

# Clients and caches must come back to us before reusing a body: the ETag makes that cheap.
CACHE_CONTROL = "no-cache"
NOT_MODIFIED_DOC: dict[int | str, dict[str, str]] = {
    304: {"description": "Not modified: `If-None-Match` holds the current `ETag`; no body."}
}


def etag_of(body: bytes) -> str:
    """A strong entity tag: the quoted SHA-256 of the exact body bytes."""
    return f'"{hashlib.sha256(body).hexdigest()}"'


def matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (weak comparison, as RFC 9110 asks)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    given = (tag.strip().removeprefix("W/") for tag in if_none_match.split(","))
    return etag in given


def tagged(model: BaseModel) -> JSONResponse:
    """The model as JSON with its ETag (and Cache-Control), before any comparison."""
    response = JSONResponse(model.model_dump(mode="json", by_alias=True))
    response.headers.update({"ETag": etag_of(bytes(response.body)), "Cache-Control": CACHE_CONTROL})
    return response


def not_modified_or(request: Request, response: JSONResponse) -> Response:
    """A bodiless 304 if the caller already has this tagged response's body, else the response."""
    if matches(request.headers.get("if-none-match"), response.headers["ETag"]):
        headers = {name: response.headers[name] for name in ("ETag", "Cache-Control")}
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return response


def conditional(request: Request, model: BaseModel) -> Response:
    """The model as JSON with its ETag, or a bodiless 304 if the caller already has it."""
    return not_modified_or(request, tagged(model))
