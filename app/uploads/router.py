"""HTTP endpoints of direct uploads: thin, they call the service."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status

from app.deps import SessionDep, SettingsDep, StorageDep, TenantDep, UnitOfWorkRoute
from app.errors import ModelTooLargeProblem
from app.openapi import problems
from app.uploads import service
from app.uploads.multipart import upload_tmp_dir
from app.uploads.schemas import UploadComplete, UploadCompleted, UploadCreate, UploadOut
from app.uploads.tables import UploadTable

router = APIRouter(prefix="/v1/uploads", tags=["uploads"], route_class=UnitOfWorkRoute)
# PUT .../content carries no API key: the token in its URL authorises it, like a presigned URL.
content_router = APIRouter(prefix="/v1/uploads", tags=["uploads"], route_class=UnitOfWorkRoute)


def base_url(request: Request, settings: SettingsDep) -> str:
    return settings.public_url or str(request.base_url)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UploadOut,
    responses=problems(413, 415, 422),
)
def create_upload(
    body: UploadCreate,
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant_id: TenantDep,
    api_url: Annotated[str, Depends(base_url)],
) -> UploadOut:
    """Start a direct upload: PUT the file to the URL (or its parts) answered, then register it
    with POST /v1/models `{"upload_id": ...}`."""
    return service.begin(session, storage, settings, body, tenant_id=tenant_id, base_url=api_url)


@router.post(
    "/{upload_id}/complete", response_model=UploadCompleted, responses=problems(404, 409, 422)
)
def complete_upload(
    upload_id: str, body: UploadComplete, session: SessionDep, storage: StorageDep,
    tenant_id: TenantDep,
) -> UploadCompleted:  # fmt: skip
    """Join the parts of a multipart upload, given each part's number and ETag."""
    return service.complete(session, storage, upload_id, body, tenant_id=tenant_id)


def _authorized(
    upload_id: str, session: SessionDep, token: Annotated[str, Query(max_length=200)]
) -> UploadTable:
    return service.authorize_content(session, upload_id, token)


async def _received_body(
    request: Request,
    settings: SettingsDep,
    upload: Annotated[UploadTable, Depends(_authorized)],  # checked before any byte is read
) -> AsyncIterator[Path]:
    """The request body in a temp file, capped at the upload limit; removed when the handler
    ends."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ModelTooLargeProblem(
            f"the upload exceeds the limit of {limit} bytes", limit_bytes=limit
        )
    fd, tmp = tempfile.mkstemp(dir=upload_tmp_dir(settings), prefix="upload-", suffix=".part")
    path, size = Path(tmp), 0
    try:
        with open(fd, "wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise ModelTooLargeProblem(
                        f"the upload exceeds the limit of {limit} bytes", limit_bytes=limit
                    )
                out.write(chunk)
        yield path
    finally:
        path.unlink(missing_ok=True)


@content_router.put(
    "/{upload_id}/content",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problems(401, 404, 409, 413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
def put_upload_content(
    storage: StorageDep,
    upload: Annotated[UploadTable, Depends(_authorized)],
    body: Annotated[Path, Depends(_received_body, scope="function")],
) -> Response:
    """The file's bytes, on local storage (the URL POST /v1/uploads answered, token included)."""
    service.store_content(storage, upload, body)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
