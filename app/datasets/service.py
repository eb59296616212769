"""Domain operations on datasets; services flush, the caller's unit of work commits."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy.orm import Session

from app.compression.graph import npz
from app.compression.graph.analysis import TensorSpec
from app.datasets import repository
from app.datasets.tables import DatasetTable
from app.db import new_id
from app.errors import (
    DatasetInUseProblem,
    DatasetMismatchProblem,
    InvalidDatasetProblem,
    NotFoundProblem,
)
from app.jobs import repository as jobs_repository
from app.storage import Storage
from app.storage.objects import content_key, release_after_commit, store_object
from app.uploads.multipart import Upload, display_name


def create_from_upload(
    session: Session, storage: Storage, upload: Upload, *, tenant_id: str
) -> DatasetTable:
    """Check an uploaded .npz (never unpickled), store it and record it."""
    received = upload.file
    display = display_name(upload.name, received.filename, "dataset")
    try:
        info = npz.inspect_dataset(received.path)
    except npz.DatasetError as exc:
        raise InvalidDatasetProblem(str(exc)) from exc
    dataset_id = new_id()
    key = content_key(received.sha256, "npz")
    store_object(session, storage, key, received.path, staged_key=upload.staged_key)
    return repository.add(
        session,
        DatasetTable(
            id=dataset_id,
            tenant_id=tenant_id,
            name=display,
            sha256=received.sha256,
            size_bytes=received.size_bytes,
            storage_key=key,
            num_samples=info.num_samples,
            arrays={k: v.model_dump() for k, v in info.arrays.items()},
            has_labels=info.has_labels,
        ),
    )


def get(session: Session, dataset_id: str, *, tenant_id: str) -> DatasetTable:
    """The dataset, or NotFoundProblem (also for another tenant's dataset)."""
    dataset = repository.get(session, dataset_id, tenant_id=tenant_id)
    if dataset is None:
        raise NotFoundProblem(f"no dataset with id {dataset_id!r}")
    return dataset


def get_for_model(
    session: Session,
    dataset_id: str,
    inputs: list[TensorSpec],
    field: str,
    *,
    tenant_id: str,
    given: Collection[str] = (),
) -> DatasetTable:
    """The dataset if its arrays (or the `given` input values) fit the model; dataset_mismatch
    otherwise."""
    try:
        dataset = get(session, dataset_id, tenant_id=tenant_id)
    except NotFoundProblem as exc:
        raise NotFoundProblem(f"{field}: {exc.detail}") from exc
    info = npz.DatasetInfo(
        num_samples=dataset.num_samples,
        arrays={k: npz.ArraySpec.model_validate(v) for k, v in dataset.arrays.items()},
        has_labels=dataset.has_labels,
    )
    try:
        npz.check_fits_model(info, inputs, given)
    except npz.DatasetMismatchError as exc:
        raise DatasetMismatchProblem(f"{field}: {exc}", field=field) from exc
    return dataset


def delete(session: Session, storage: Storage, dataset_id: str, *, tenant_id: str) -> None:
    """Delete a dataset no active job reads; its file goes once no row shares it."""
    dataset = get(session, dataset_id, tenant_id=tenant_id)
    if jobs_repository.count_active_for_dataset(session, dataset.id):
        raise DatasetInUseProblem("queued or running jobs read this dataset: cancel them first")
    remove(session, storage, dataset)


def remove(session: Session, storage: Storage, dataset: DatasetTable) -> None:
    """Delete the row; its file goes after the commit unless another row shares it."""
    key = dataset.storage_key
    repository.delete(session, dataset)
    release_after_commit(session, storage, key)
