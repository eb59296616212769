"""The Idempotency-Key of a creating POST, as a FastAPI dependency the router hands its work to.

The key is reserved (and committed) before the handler runs; the handler's resource and the
stored response then commit together when this dependency exits, so a retry never sees one
without the other. Any failure (a problem answer, a validation error, a 5xx, a failing commit)
releases the key: only successful creations are kept and replayed.
"""

# No `from __future__ import annotations`: FastAPI reads the upload guard's signature, whose
# dependency is a local of upload_idempotency that a string annotation could not name.
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.deps import SessionDep, TenantDep
from app.idempotency import service
from app.idempotency.service import StoredResponse
from app.uploads.multipart import Upload
from app.uploads.schemas import UploadRegistration

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEPT_HEADERS = ("Location",)

ResultT = TypeVar("ResultT", bound=BaseModel)

KeyHeader = Annotated[
    str | None,
    Header(
        alias=HEADER,
        min_length=1,
        max_length=255,
        description="Any unique string (a UUID): a retry with the same key and body gets the "
        "first response back (for 24 h) instead of creating the resource again.",
    ),
]


@dataclass
class Idempotency:
    """What a creating endpoint gets: no key, a stored answer to replay, or a key it now holds."""

    session: Session
    tenant_id: str
    status_code: int
    key: str | None = None
    replay: StoredResponse | None = None

    def replayed(self) -> Response | None:
        """The first request's answer when this request is a retry of it, else None."""
        if self.replay is None:
            return None
        headers = {**self.replay.headers, REPLAYED_HEADER: "true"}
        return JSONResponse(self.replay.body, self.replay.status, headers=headers)

    def keep(self, response: Response, result: ResultT) -> ResultT:
        """`result`, kept under the key (if one was sent) with the status and Location."""
        if self.key is not None:
            kept = {
                name: response.headers[name] for name in KEPT_HEADERS if name in response.headers
            }
            status = response.status_code or self.status_code
            stored = StoredResponse(status, result.model_dump(mode="json", by_alias=True), kept)
            service.complete(self.session, self.key, tenant_id=self.tenant_id, response=stored)
        return result


def _guard(
    request: Request, session: Session, tenant_id: str, key: str | None, fingerprint: str
) -> Iterator[Idempotency]:
    status_code = getattr(request.scope.get("route"), "status_code", None) or 200
    if key is None:
        yield Idempotency(session, tenant_id, status_code)
        return
    method_path = f"{request.method} {request.url.path}"
    replay = service.reserve(
        session, key, tenant_id=tenant_id, fingerprint=fingerprint, method_path=method_path
    )
    if replay is not None:
        yield Idempotency(session, tenant_id, status_code, key, replay)
        return
    try:
        yield Idempotency(session, tenant_id, status_code, key)
        # Here rather than in the unit of work's exit: a commit that fails must free the key.
        session.commit()
    except BaseException:
        session.rollback()
        try:
            service.release(session, key, tenant_id=tenant_id)
            session.commit()
        except Exception:
            # The request's own error is the one to answer; the key frees itself once its
            # in-flight time runs out.
            session.rollback()
            log.warning("could not release Idempotency-Key of %s", request.url.path, exc_info=True)
        raise


async def _json_fingerprint(request: Request) -> str:
    if HEADER.lower() not in request.headers:
        return ""
    return service.json_fingerprint(await request.body())  # FastAPI has read and cached it


def _json_idempotency(
    request: Request,
    session: SessionDep,
    tenant_id: TenantDep,
    fingerprint: Annotated[str, Depends(_json_fingerprint)],
    key: KeyHeader = None,
) -> Iterator[Idempotency]:
    yield from _guard(request, session, tenant_id, key, fingerprint)


# scope="function": the key is settled before the response is sent, like the unit of work.
JsonIdempotency = Annotated[Idempotency, Depends(_json_idempotency, scope="function")]


def upload_idempotency(receive_upload: Any) -> Any:
    """`Annotated[Idempotency, upload_idempotency(RECEIVE_X)]` for a multipart upload endpoint;
    `receive_upload` is the endpoint's own upload dependency, so the file is received once."""

    def guard(
        request: Request,
        session: SessionDep,
        tenant_id: TenantDep,
        upload: Annotated[Upload | UploadRegistration, receive_upload],
        key: KeyHeader = None,
    ) -> Iterator[Idempotency]:
        if isinstance(upload, UploadRegistration):  # a direct upload registered as JSON
            fingerprint = service.json_fingerprint(upload.model_dump_json().encode())
        else:
            fingerprint = service.upload_fingerprint(
                file_sha256=upload.file.sha256,
                filename=upload.file.filename,
                fields={"name": upload.name},
            )
        yield from _guard(request, session, tenant_id, key, fingerprint)

    return Depends(guard, scope="function")
