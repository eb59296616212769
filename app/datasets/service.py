"""Domain operations on datasets; services flush, the caller's unit of work commits."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.compression.graph import npz
from app.compression.graph.analysis import TensorSpec
from app.datasets import repository
from app.datasets.tables import DatasetTable
from app.db import call_after_commit, call_after_rollback, new_id
from app.errors import (
    DatasetInUseError,
    DatasetMismatchError,
    InvalidDatasetError,
    NotFoundError,
)
from app.jobs import repository as jobs_repository
from app.storage import Storage
from app.uploads import ReceivedFile, display_name


def create_from_upload(
    session: Session, storage: Storage, tenant_id: str, upload: ReceivedFile, name: str | None
) -> DatasetTable:
    """Check an uploaded .npz (never unpickled), store it and record it."""
    if upload.size_bytes == 0 or not upload.sha256:
        raise InvalidDatasetError("the uploaded file is empty or was cut off")
    display = display_name(name, upload.filename, "dataset")
    try:
        info = npz.inspect_dataset(upload.path)
    except npz.DatasetError as exc:
        raise InvalidDatasetError(str(exc)) from exc
    dataset_id = new_id()
    key = f"datasets/{dataset_id}/data.npz"
    storage.put_file(key, upload.path)
    call_after_rollback(session, lambda: storage.delete(key))
    return repository.add(
        session,
        DatasetTable(
            id=dataset_id,
            tenant_id=tenant_id,
            name=display,
            sha256=upload.sha256,
            size_bytes=upload.size_bytes,
            storage_key=key,
            num_samples=info.num_samples,
            arrays={k: v.model_dump() for k, v in info.arrays.items()},
            has_labels=info.has_labels,
        ),
    )


def get(session: Session, tenant_id: str, dataset_id: str) -> DatasetTable:
    """The dataset, or NotFoundError (also for another tenant's dataset)."""
    dataset = repository.get(session, tenant_id, dataset_id)
    if dataset is None:
        raise NotFoundError(f"no dataset with id {dataset_id!r}")
    return dataset


def get_for_model(
    session: Session, tenant_id: str, dataset_id: str, inputs: list[TensorSpec], field: str
) -> DatasetTable:
    """The dataset if its arrays fit the model's inputs; dataset_mismatch otherwise."""
    try:
        dataset = get(session, tenant_id, dataset_id)
    except NotFoundError as exc:
        raise NotFoundError(f"{field}: {exc.detail}") from exc
    info = npz.DatasetInfo(
        num_samples=dataset.num_samples,
        arrays={k: npz.ArraySpec.model_validate(v) for k, v in dataset.arrays.items()},
        has_labels=dataset.has_labels,
    )
    try:
        npz.check_fits_model(info, inputs)
    except npz.DatasetMismatchError as exc:
        raise DatasetMismatchError(f"{field}: {exc}", field=field) from exc
    return dataset


def delete(session: Session, storage: Storage, tenant_id: str, dataset_id: str) -> None:
    """Delete a dataset row, then its file once the deletion commits."""
    dataset = get(session, tenant_id, dataset_id)
    if jobs_repository.count_active_for_dataset(session, dataset.id):
        raise DatasetInUseError("queued or running jobs read this dataset: cancel them first")
    key = dataset.storage_key
    repository.delete(session, dataset)
    call_after_commit(session, lambda: storage.delete(key))
