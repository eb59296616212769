"""Domain operations on models; services flush, the caller's unit of work commits."""

from __future__ import annotations

import tempfile
import zipfile
from pathlib import Path

from sqlalchemy.orm import Session

from app.compression.graph import analysis, archive, transport
from app.db import call_after_commit, call_after_rollback, new_id
from app.errors import (
    InvalidModelError,
    ModelInUseError,
    NotFoundError,
    QuotaExceededError,
    UnsafeArchiveError,
)
from app.jobs import repository as jobs_repository
from app.onnx_models import repository
from app.onnx_models.tables import ModelTable
from app.settings import get_settings
from app.storage import Storage
from app.uploads import ReceivedFile, display_name


def _row_from_file(
    model_id: str,
    tenant_id: str,
    name: str,
    *,
    model_path: Path,
    stored_path: Path,
    packaging: str,
    sha256: str,
    key: str,
) -> ModelTable:
    try:
        info = analysis.inspect_model(model_path)
    except analysis.InvalidModelError as exc:
        raise InvalidModelError(str(exc)) from exc
    return ModelTable(
        id=model_id,
        tenant_id=tenant_id,
        name=name,
        sha256=sha256,
        size_bytes=stored_path.stat().st_size,
        storage_key=key,
        format="onnx",
        packaging=packaging,
        ir_version=info.ir_version,
        opset=info.opset,
        producer=info.producer,
        inputs=[spec.model_dump() for spec in info.inputs],
        outputs=[spec.model_dump() for spec in info.outputs],
        op_counts=info.op_counts,
        param_count=info.param_count,
        transport_size_bytes=transport.zstd_size(stored_path),
    )


def _is_archive(upload: ReceivedFile) -> bool:
    return upload.filename.lower().endswith(".zip") or zipfile.is_zipfile(upload.path)


def create_from_upload(
    session: Session, storage: Storage, tenant_id: str, upload: ReceivedFile, name: str | None
) -> ModelTable:
    """Validate an uploaded .onnx (or .zip with external data), store it, and record it."""
    if upload.size_bytes == 0 or not upload.sha256:
        raise InvalidModelError("the uploaded file is empty or was cut off")
    settings = get_settings()
    if repository.count_for_tenant(session, tenant_id) >= settings.max_models_per_tenant:
        raise QuotaExceededError(
            f"this tenant already stores {settings.max_models_per_tenant} models: delete some first"
        )
    model_id = new_id()
    packaging = "zip" if _is_archive(upload) else "onnx"
    key = f"models/{model_id}/model.{packaging}"
    with tempfile.TemporaryDirectory(dir=upload.path.parent, prefix="unpacked-") as unpacked:
        model_path = upload.path
        if packaging == "zip":
            model_path = _unpack(upload.path, Path(unpacked), settings.max_upload_bytes)
        row = _row_from_file(
            model_id, tenant_id, display_name(name, upload.filename, "model"),
            model_path=model_path, stored_path=upload.path, packaging=packaging,
            sha256=upload.sha256, key=key,
        )  # fmt: skip
    storage.put_file(key, upload.path)
    # If the row never commits, the stored object must not outlive it.
    call_after_rollback(session, lambda: storage.delete(key))
    return repository.add(session, row)


def _unpack(archive_path: Path, dest: Path, max_upload_bytes: int) -> Path:
    try:
        # External data may legitimately compress well; the archive module bounds the ratio.
        return archive.extract_model_archive(archive_path, dest, 4 * max_upload_bytes)
    except archive.UnsafeArchiveError as exc:
        raise UnsafeArchiveError(str(exc)) from exc
    except archive.ArchiveContentError as exc:
        raise InvalidModelError(str(exc)) from exc


def record_output(
    session: Session,
    *,
    tenant_id: str,
    name: str,
    model_path: Path,
    stored_path: Path,
    packaging: str,
    sha256: str,
    key: str,
    parent_id: str,
    job_id: str,
) -> ModelTable:
    """Record a model a job produced; its file is already stored under `key`."""
    row = _row_from_file(
        new_id(), tenant_id, name, model_path=model_path, stored_path=stored_path,
        packaging=packaging, sha256=sha256, key=key,
    )  # fmt: skip
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
    remove(session, storage, model)


def remove(session: Session, storage: Storage, model: ModelTable) -> None:
    """Delete the row; its file goes after the commit unless another row shares it."""
    key = model.storage_key
    repository.delete(session, model)
    if repository.count_with_storage_key(session, key) == 0:
        call_after_commit(session, lambda: storage.delete(key))
