"""HTTP endpoints of models: thin, they call the service."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from app.errors import InvalidRequestError
from app.onnx_models import repository, service
from app.onnx_models.schemas import ModelList, ModelOut
from app.onnx_models.upload import receive_multipart
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.storage.base import iter_stream

router = APIRouter(prefix="/v1/models", tags=["models"])

UPLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "An .onnx file",
                        },
                        "name": {"type": "string", "maxLength": 255},
                    },
                }
            }
        },
    }
}


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ModelOut, openapi_extra=UPLOAD_DOC
)
async def upload_model(
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    tenant_id: TenantDep,
    settings: SettingsDep,
    response: Response,
) -> ModelOut:
    """Upload an ONNX model (multipart `file`, optional `name`); validated before it is kept."""
    tmp_dir = settings.data_dir / "tmp" if settings.is_embedded else Path(tempfile.gettempdir())
    tmp_dir.mkdir(parents=True, exist_ok=True)
    form = await receive_multipart(
        request, file_field="file", max_file_bytes=settings.max_upload_bytes, tmp_dir=tmp_dir
    )
    try:
        if form.file is None:
            raise InvalidRequestError(
                "file: a multipart part named 'file' with a filename is required"
            )
        model = await run_in_threadpool(
            service.create_from_upload,
            session,
            storage,
            tenant_id,
            form.file,
            form.fields.get("name"),
        )
    finally:
        form.discard()
    response.headers["Location"] = f"/v1/models/{model.id}"
    return ModelOut.model_validate(model)


@router.get("", response_model=ModelList)
def list_models(
    session: SessionDep,
    tenant_id: TenantDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    parent_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ModelList:
    """List models, newest first."""
    page = repository.list_page(session, tenant_id, limit=limit, cursor=cursor, parent_id=parent_id)
    return ModelList(
        items=[ModelOut.model_validate(m) for m in page.items], next_cursor=page.next_cursor
    )


@router.get("/{model_id}", response_model=ModelOut)
def get_model(model_id: str, session: SessionDep, tenant_id: TenantDep) -> ModelOut:
    """One model's metadata."""
    return ModelOut.model_validate(service.get(session, tenant_id, model_id))


@router.get(
    "/{model_id}/download",
    response_model=None,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_model(
    model_id: str,
    session: SessionDep,
    storage: StorageDep,
    tenant_id: TenantDep,
    settings: SettingsDep,
) -> Response:
    """The model's bytes (streamed), or a redirect to a presigned URL when enabled."""
    model = service.get(session, tenant_id, model_id)
    if settings.presign_downloads and (url := storage.presign(model.storage_key)):
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.name)[:100] or "model"
    # Opened here, not lazily in the stream, so a missing object is a clean error response.
    stream = storage.open(model.storage_key)
    return StreamingResponse(
        iter_stream(stream),
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}.onnx"',
            "Content-Length": str(model.size_bytes),
            "X-Model-Sha256": model.sha256,
        },
    )


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_model(
    model_id: str, session: SessionDep, storage: StorageDep, tenant_id: TenantDep
) -> Response:
    """Delete a model and, once no other row shares it, its file."""
    service.delete(session, storage, tenant_id, model_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
