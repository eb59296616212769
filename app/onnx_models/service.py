"""Domain operations on models; services flush, the caller's unit of work commits."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from app.compression import analysis, transport
from app.db import call_after_commit, call_after_rollback, new_id
from app.errors import (
    InvalidModelError,
    ModelInUseError,
    NotFoundError,
    QuotaExceededError,
)
from app.jobs import repository as jobs_repository
from app.onnx_models import repository
from app.onnx_models.tables import ModelTable
from app.settings import get_settings
from app.storage import Storage
from app.uploads import ReceivedFile, display_name


def _row_from_file(
    model_id: str, tenant_id: str, name: str, path: Path, sha256: str, size: int, key: str
) -> ModelTable:
    try:
        info = analysis.inspect_model(path)
    except analysis.InvalidModelError as exc:
        raise InvalidModelError(str(exc)) from exc
    return ModelTable(
        id=model_id,
        tenant_id=tenant_id,
        name=name,
        sha256=sha256,
        size_bytes=size,
        storage_key=key,
        format="onnx",
        ir_version=info.ir_version,
        opset=info.opset,
        producer=info.producer,
        inputs=[spec.model_dump() for spec in info.inputs],
        outputs=[spec.model_dump() for spec in info.outputs],
        op_counts=info.op_counts,
        param_count=info.param_count,
        transport_size_bytes=transport.zstd_size(path),
    )


def create_from_upload(
    session: Session, storage: Storage, tenant_id: str, upload: ReceivedFile, name: str | None
) -> ModelTable:
    """Validate an uploaded file as ONNX, store it, and record it."""
    if upload.size_bytes == 0 or not upload.sha256:
        raise InvalidModelError("the uploaded file is empty or was cut off")
    limit = get_settings().max_models_per_tenant
    if repository.count_for_tenant(session, tenant_id) >= limit:
        raise QuotaExceededError(f"this tenant already stores {limit} models: delete some first")
    if upload.filename.lower().endswith(".zip"):
        raise InvalidModelError(
            "zip uploads (a model with external data) are not accepted yet: upload the .onnx file"
        )
    model_id = new_id()
    key = f"models/{model_id}/model.onnx"
    row = _row_from_file(
        model_id,
        tenant_id,
        display_name(name, upload.filename, "model"),
        upload.path,
        upload.sha256,
        upload.size_bytes,
        key,
    )
    storage.put_file(key, upload.path)
    # If the row never commits, the stored object must not outlive it.
    call_after_rollback(session, lambda: storage.delete(key))
    return repository.add(session, row)


def record_output(
    session: Session,
    storage: Storage,
    *,
    tenant_id: str,
    name: str,
    path: Path,
    sha256: str,
    key: str,
    parent_id: str,
    job_id: str,
) -> ModelTable:
    """Record a model a job produced; its file is already stored under `key`."""
    row = _row_from_file(new_id(), tenant_id, name, path, sha256, path.stat().st_size, key)
    row.parent_id, row.job_id = parent_id, job_id
    return repository.add(session, row)


def get(session: Session, tenant_id: str, model_id: str) -> ModelTable:
    """The model, or NotFoundError (also for another tenant's model)."""
    model = repository.get(session, tenant_id, model_id)
    if model is None:
        raise NotFoundError(f"no model with id {model_id!r}")
    return model


def delete(session: Session, storage: Storage, tenant_id: str, model_id: str) -> None:
    """Delete a model that no active job is using; its file goes once the row is gone."""
    model = get(session, tenant_id, model_id)
    if jobs_repository.count_active_for_model(session, model.id):
        raise ModelInUseError("the model has queued or running jobs: cancel them first")
    key = model.storage_key
    repository.delete(session, model)
    if repository.count_with_storage_key(session, key) == 0:
        call_after_commit(session, lambda: storage.delete(key))
