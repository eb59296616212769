"""HTTP endpoints of models: thin, they call the service."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse, StreamingResponse
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.compression.graph import transport
from app.deps import (
    PageQuery,
    SessionDep,
    SettingsDep,
    StorageDep,
    TenantDep,
    UnitOfWorkRoute,
    located,
)
from app.errors import (
    InvalidModelProblem,
    InvalidRequestProblem,
    ModelTooLargeProblem,
    NotFoundProblem,
    ProblemError,
    UploadAlreadyUsedProblem,
    UploadIncompleteProblem,
)
from app.etag import NOT_MODIFIED_DOC, conditional
from app.idempotency.dependency import Idempotency, upload_idempotency
from app.onnx_models import repository, service
from app.onnx_models.schemas import ModelAnalysisOut, ModelList, ModelOut
from app.onnx_models.tables import ModelTable
from app.openapi import problems
from app.settings import Settings
from app.storage import Storage
from app.storage.base import iter_stream
from app.uploads import service as uploads_service
from app.uploads.multipart import Upload, received_upload, upload_openapi
from app.uploads.schemas import UploadRegistration

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=UnitOfWorkRoute)

UPLOAD_DOC = upload_openapi(
    "An .onnx file, or a .zip of one with its external-data files",
    json_schema=UploadRegistration.model_json_schema(),
)
# A registration's answers that leave its upload open: nothing was staged, or it is not ours.
KEEPS_UPLOAD = (NotFoundProblem, UploadAlreadyUsedProblem, UploadIncompleteProblem)


async def _receive_model(
    request: Request,
    settings: SettingsDep,
    _tenant_id: TenantDep,  # resolved first: a caller without a valid key sends no file
) -> AsyncIterator[Upload | UploadRegistration]:
    """The model in the request: a multipart upload, or (as JSON) a direct upload to register."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        async with received_upload(
            request, settings, too_large=ModelTooLargeProblem, empty=InvalidModelProblem
        ) as upload:
            yield upload
        return
    body = bytearray()
    async for chunk in request.stream():  # this path is not capped by the request gate
        body += chunk
        if len(body) > settings.max_json_bytes:
            raise InvalidRequestProblem(f"a JSON body is at most {settings.max_json_bytes} bytes")
    try:
        registration = UploadRegistration.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise InvalidRequestProblem(f"body: {exc.errors()[0]['msg']}") from exc
    yield registration


# scope="function": a multipart upload's temp file goes before the answer is sent, not after.
RECEIVE_MODEL = Depends(_receive_model, scope="function")


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ModelOut,
    responses=problems(404, 409, 413, 415, 422, 507),
    openapi_extra=UPLOAD_DOC,
)
def upload_model(
    session: SessionDep,
    storage: StorageDep,
    settings: SettingsDep,
    tenant_id: TenantDep,
    source: Annotated[Upload | UploadRegistration, RECEIVE_MODEL],
    response: Response,
    idempotency: Annotated[Idempotency, upload_idempotency(RECEIVE_MODEL)],
) -> ModelOut | Response:
    """Upload an ONNX model (multipart `file`, optional `name`), or register a direct upload
    (JSON `{"upload_id", "name"}`); validated before it is kept."""
    if (replayed := idempotency.replayed()) is not None:
        return replayed
    if isinstance(source, UploadRegistration):
        model = _register(session, storage, settings, source, tenant_id=tenant_id)
    else:
        model = service.create_from_upload(session, storage, source, tenant_id=tenant_id)
    out = located(response, f"/v1/models/{model.id}", ModelOut.model_validate(model))
    return idempotency.keep(response, out)


def _register(
    session: Session,
    storage: Storage,
    settings: Settings,
    registration: UploadRegistration,
    *,
    tenant_id: str,
) -> ModelTable:
    """Register a direct upload; one refused is spent, its staged bytes deleted, and that is
    committed even though the request fails."""
    try:
        return uploads_service.register_model(
            session, storage, settings, registration, tenant_id=tenant_id
        )
    except KEEPS_UPLOAD:
        raise
    except ProblemError:
        session.rollback()
        uploads_service.discard(session, storage, registration.upload_id, tenant_id=tenant_id)
        session.commit()
        raise


@router.get("", response_model=ModelList, responses=problems(422))
def list_models(
    session: SessionDep,
    tenant_id: TenantDep,
    page: PageQuery,
    parent_id: Annotated[str | None, Query(max_length=64)] = None,
) -> ModelList:
    """List models, newest first."""
    found = repository.list_page(session, page, tenant_id=tenant_id, parent_id=parent_id)
    return found.to_list(ModelList, ModelOut.model_validate)


@router.get("/{model_id}", response_model=ModelOut, responses={**NOT_MODIFIED_DOC, **problems(404)})
def get_model(
    model_id: str, session: SessionDep, tenant_id: TenantDep, request: Request
) -> Response:
    """One model's metadata; `ETag` for cheap polling."""
    model = service.get(session, model_id, tenant_id=tenant_id)
    return conditional(request, ModelOut.model_validate(model))


@router.get(
    "/{model_id}/download",
    response_model=None,
    responses={200: {"content": {"application/octet-stream": {}}}, **problems(404, 422)},
)
def download_model(
    model_id: str,
    session: SessionDep,
    storage: StorageDep,
    tenant_id: TenantDep,
    settings: SettingsDep,
    encoding: Annotated[
        Literal["identity", "zstd"],
        Query(description="zstd: the file entropy-coded for transport (`.onnx.zst`)."),
    ] = "identity",
) -> Response:
    """The model's bytes (streamed, or zstd-coded), or a redirect to a presigned URL if enabled."""
    model = service.get(session, model_id, tenant_id=tenant_id)
    extension = f"{model.packaging}.zst" if encoding == "zstd" else model.packaging
    disposition = attachment(model.name, extension)
    if (
        encoding == "identity"
        and settings.presign_downloads
        and (url := storage.presign(model.storage_key, content_disposition=disposition))
    ):
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)
    # Opened here, not lazily in the stream, so a missing object is a clean error response.
    stream = storage.open(model.storage_key)
    headers = {"X-Model-Sha256": model.sha256, "Content-Disposition": disposition}
    if encoding == "zstd":
        return StreamingResponse(
            transport.zstd_stream(stream), media_type="application/zstd", headers=headers
        )
    headers["Content-Length"] = str(model.size_bytes)
    media_type = "application/zip" if model.packaging == "zip" else "application/octet-stream"
    return StreamingResponse(iter_stream(stream), media_type=media_type, headers=headers)


def attachment(name: str, extension: str) -> str:
    """Content-Disposition of a download named after the model (RFC 6266): an ASCII `filename`
    any client can read, plus the exact name as UTF-8 in `filename*` (RFC 8187) when they differ.

    HTTP headers are Latin-1: a name such as 模型 cannot go into `filename` as it is.
    """
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100] or "model"
    # Compatibility forms first, so ﬁ becomes fi and é becomes e rather than _.
    decomposed = unicodedata.normalize("NFKD", name)
    fallback = "".join(
        c if c.isascii() and (c.isalnum() or c in "-_.") else "_"
        for c in decomposed
        if not unicodedata.combining(c)
    )
    if not any(c.isalnum() for c in fallback):
        fallback = "model"
    header = f'attachment; filename="{fallback}.{extension}"'
    if fallback != name:
        header += f"; filename*=UTF-8''{quote(f'{name}.{extension}', safe='')}"
    return header


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409))
def delete_model(
    model_id: str, session: SessionDep, storage: StorageDep, tenant_id: TenantDep
) -> Response:
    """Delete a model and, once no other row shares it, its file."""
    service.delete(session, storage, model_id, tenant_id=tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{model_id}/analysis", response_model=ModelAnalysisOut, responses=problems(404, 422))
def get_model_analysis(
    model_id: str, session: SessionDep, storage: StorageDep, tenant_id: TenantDep
) -> ModelAnalysisOut:
    """Pre-flight analysis: op histogram, parameters by op, symbolic dims, subgraphs, what each
    pass would touch, the workers' CPU features and an estimate of calibration memory."""
    return service.get_analysis(session, storage, model_id, tenant_id=tenant_id)
