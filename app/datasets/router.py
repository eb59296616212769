"""HTTP endpoints of datasets: thin, they call the service."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response, status

from app.datasets import repository, service
from app.datasets.schemas import DatasetList, DatasetOut
from app.deps import PageQuery, SessionDep, StorageDep, TenantDep, UnitOfWorkRoute, located
from app.errors import DatasetTooLargeProblem, InvalidDatasetProblem
from app.idempotency.dependency import Idempotency, upload_idempotency
from app.openapi import problems
from app.uploads.multipart import Upload, receive_upload, upload_openapi

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], route_class=UnitOfWorkRoute)

UPLOAD_DOC = upload_openapi(
    "An .npz: arrays named after the model inputs, axis 0 = samples, optional `labels`."
)
RECEIVE_DATASET = receive_upload(too_large=DatasetTooLargeProblem, empty=InvalidDatasetProblem)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=DatasetOut,
    responses=problems(409, 413, 415, 422, 507),
    openapi_extra=UPLOAD_DOC,
)
def upload_dataset(
    session: SessionDep,
    storage: StorageDep,
    tenant_id: TenantDep,
    upload: Annotated[Upload, RECEIVE_DATASET],
    response: Response,
    idempotency: Annotated[Idempotency, upload_idempotency(RECEIVE_DATASET)],
) -> DatasetOut | Response:
    """Upload calibration or evaluation data as an .npz (multipart `file`, optional `name`)."""
    if (replayed := idempotency.replayed()) is not None:
        return replayed
    dataset = service.create_from_upload(session, storage, upload, tenant_id=tenant_id)
    out = located(response, f"/v1/datasets/{dataset.id}", DatasetOut.model_validate(dataset))
    return idempotency.keep(response, out)


@router.get("", response_model=DatasetList, responses=problems(422))
def list_datasets(session: SessionDep, tenant_id: TenantDep, page: PageQuery) -> DatasetList:
    """List datasets, newest first."""
    found = repository.list_page(session, page, tenant_id=tenant_id)
    return found.to_list(DatasetList, DatasetOut.model_validate)


@router.get("/{dataset_id}", response_model=DatasetOut, responses=problems(404))
def get_dataset(dataset_id: str, session: SessionDep, tenant_id: TenantDep) -> DatasetOut:
    """One dataset's arrays and sample count."""
    return DatasetOut.model_validate(service.get(session, dataset_id, tenant_id=tenant_id))


@router.delete(
    "/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problems(404, 409)
)
def delete_dataset(
    dataset_id: str, session: SessionDep, storage: StorageDep, tenant_id: TenantDep
) -> Response:
    """Delete a dataset and its file."""
    service.delete(session, storage, dataset_id, tenant_id=tenant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
