"""HTTP endpoints of datasets: thin, they call the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.datasets import repository, service
from app.datasets.schemas import DatasetList, DatasetOut
from app.deps import SessionDep, SettingsDep, StorageDep, TenantDep
from app.errors import DatasetTooLargeError
from app.pagination import DEFAULT_LIMIT, MAX_LIMIT
from app.uploads import receive_upload, upload_openapi

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])

UPLOAD_DOC = upload_openapi(
    "An .npz: arrays named after the model inputs, axis 0 = samples, optional `labels`."
)


@router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=DatasetOut, openapi_extra=UPLOAD_DOC
)
async def upload_dataset(
    request: Request,
    session: SessionDep,
    storage: StorageDep,
    tenant_id: TenantDep,
    settings: SettingsDep,
    response: Response,
) -> DatasetOut:
    """Upload calibration or evaluation data as an .npz (multipart `file`, optional `name`)."""
    upload, name, form = await receive_upload(request, settings, DatasetTooLargeError)
    try:
        dataset = await run_in_threadpool(
            service.create_from_upload, session, storage, tenant_id, upload, name
        )
    finally:
        form.discard()
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return DatasetOut.model_validate(dataset)


@router.get("", response_model=DatasetList)
def list_datasets(
    session: SessionDep,
    tenant_id: TenantDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> DatasetList:
    """List datasets, newest first."""
    page = repository.list_page(session, tenant_id, limit=limit, cursor=cursor)
    return DatasetList(
        items=[DatasetOut.model_validate(d) for d in page.items], next_cursor=page.next_cursor
    )


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep, tenant_id: TenantDep) -> DatasetOut:
    """One dataset's arrays and sample count."""
    return DatasetOut.model_validate(service.get(session, tenant_id, dataset_id))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(
    dataset_id: str, session: SessionDep, storage: StorageDep, tenant_id: TenantDep
) -> Response:
    """Delete a dataset and its file."""
    service.delete(session, storage, tenant_id, dataset_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
