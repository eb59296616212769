"""Domain operations on models; services flush, the caller's unit of work commits."""

from __future__ import annotations

import logging
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.compression.graph import analysis, archive, transport
from app.compression.graph.model_analysis import ModelAnalysis, analyze_model
from app.compression.graph.model_info import ModelInfo
from app.db import new_id
from app.errors import (
    InvalidModelProblem,
    ModelInUseProblem,
    NotFoundProblem,
    QuotaExceededProblem,
    UnsafeArchiveProblem,
)
from app.jobs import repository as jobs_repository
from app.onnx_models import repository
from app.onnx_models.analysis_notes import notes_for, worker_hosts
from app.onnx_models.schemas import ModelAnalysisOut
from app.onnx_models.tables import ModelTable
from app.onnx_models.validation import validate_model_file
from app.settings import get_settings
from app.storage import Storage
from app.storage.objects import content_key, release_after_commit, store_object
from app.uploads.multipart import ReceivedFile, Upload, display_name

log = logging.getLogger(__name__)
# Succeeded jobs whose measurements tell which hosts the workers run on.
RECENT_JOBS_FOR_HOSTS = 50


@dataclass(frozen=True, kw_only=True)
class ModelFile:
    """A model file to record: the .onnx to inspect, and what is stored under `key`."""

    model_path: Path  # the .onnx itself, or the one unpacked from a zip
    stored_path: Path  # the file stored under `key`: the .onnx or the .zip
    packaging: str
    sha256: str
    key: str


def _row_from_file(
    model_id: str,
    name: str,
    file: ModelFile,
    info: ModelInfo,
    found: ModelAnalysis | None,
    *,
    tenant_id: str,
) -> ModelTable:
    return ModelTable(
        id=model_id,
        tenant_id=tenant_id,
        name=name,
        sha256=file.sha256,
        size_bytes=file.stored_path.stat().st_size,
        storage_key=file.key,
        format="onnx",
        packaging=file.packaging,
        ir_version=info.ir_version,
        opset=info.opset,
        producer=info.producer,
        inputs=[spec.model_dump() for spec in info.inputs],
        outputs=[spec.model_dump() for spec in info.outputs],
        op_counts=info.op_counts,
        param_count=info.param_count,
        transport_size_bytes=transport.zstd_size(file.stored_path),
        analysis=found.model_dump(mode="json") if found is not None else None,
    )


def _is_archive(upload: ReceivedFile) -> bool:
    return upload.filename.lower().endswith(".zip") or zipfile.is_zipfile(upload.path)


def create_from_upload(
    session: Session, storage: Storage, upload: Upload, *, tenant_id: str
) -> ModelTable:
    """Validate an uploaded .onnx (or .zip with external data), store it, and record it."""
    received = upload.file
    settings = get_settings()
    if repository.count_for_tenant(session, tenant_id=tenant_id) >= settings.max_models_per_tenant:
        raise QuotaExceededProblem(
            f"this tenant already stores {settings.max_models_per_tenant} models: delete some first"
        )
    model_id = new_id()
    packaging = "zip" if _is_archive(received) else "onnx"
    key = content_key(received.sha256, packaging)
    with tempfile.TemporaryDirectory(dir=received.path.parent, prefix="unpacked-") as unpacked:
        model_path = received.path
        if packaging == "zip":
            model_path = _unpack(received.path, Path(unpacked), settings.max_upload_bytes)
        file = ModelFile(
            model_path=model_path, stored_path=received.path, packaging=packaging,
            sha256=received.sha256, key=key,
        )  # fmt: skip
        display = display_name(upload.name, received.filename, "model")
        # The untrusted file is parsed in a sandbox child, never in the API process.
        checked = validate_model_file(model_path, settings)
        row = _row_from_file(
            model_id, display, file, checked.info, checked.analysis, tenant_id=tenant_id
        )
    # Same bytes, same object: a second upload of a file adds a row, not a copy.
    store_object(session, storage, key, received.path, staged_key=upload.staged_key)
    return repository.add(session, row)


def get(session: Session, model_id: str, *, tenant_id: str) -> ModelTable:
    """The model, or NotFoundProblem (also for another tenant's model)."""
    model = repository.get(session, model_id, tenant_id=tenant_id)
    if model is None:
        raise NotFoundProblem(f"no model with id {model_id!r}")
    return model


def _unpack(archive_path: Path, dest: Path, max_upload_bytes: int) -> Path:
    try:
        # External data may legitimately compress well; the archive module bounds the ratio.
        return archive.extract_model_archive(archive_path, dest, 4 * max_upload_bytes)
    except archive.UnsafeArchiveError as exc:
        raise UnsafeArchiveProblem(str(exc)) from exc
    except archive.ArchiveContentError as exc:
        raise InvalidModelProblem(str(exc)) from exc


def record_output(
    session: Session, file: ModelFile, *, tenant_id: str, name: str, parent_id: str, job_id: str
) -> ModelTable:
    """Record a model a job produced; its file is already stored under `file.key`."""
    # Our own pass wrote it, and the worker that calls this already runs outside the API.
    try:
        info = analysis.inspect_model(file.model_path)
    except analysis.InvalidModelError as exc:
        raise InvalidModelProblem(str(exc)) from exc
    row = _row_from_file(new_id(), name, file, info, _analyze(file.model_path), tenant_id=tenant_id)
    row.parent_id, row.job_id = parent_id, job_id
    return repository.add(session, row)


def _analyze(path: Path) -> ModelAnalysis | None:
    """The analysis of a model our own pass wrote; None (logged) rather than a failed job."""
    try:
        return analyze_model(path)
    except Exception:  # the output is valid: an analysis that trips on it must not lose it
        log.exception("analysis of %s failed", path)
        return None


def get_analysis(
    session: Session, storage: Storage, model_id: str, *, tenant_id: str
) -> ModelAnalysisOut:
    """The model's analysis (computed now, in a sandbox child, if its row predates it), the
    workers' hosts and what they mean."""
    model = get(session, model_id, tenant_id=tenant_id)
    found = _stored_analysis(model)
    if found is None:
        found = _analyze_stored_file(storage, model)
        model.analysis = found.model_dump(mode="json")
        session.flush()
    workers = worker_hosts(jobs_repository.recent_metrics(session, RECENT_JOBS_FOR_HOSTS))
    return ModelAnalysisOut(
        model_id=model.id, analysis=found, workers=workers, notes=notes_for(found, workers)
    )


def _stored_analysis(model: ModelTable) -> ModelAnalysis | None:
    if model.analysis is None:
        return None
    try:
        return ModelAnalysis.model_validate(model.analysis)
    except ValidationError:  # recorded under an older shape: analyze again
        return None


def _analyze_stored_file(storage: Storage, model: ModelTable) -> ModelAnalysis:
    """Analyze a stored model the way an upload is: in the sandbox child, never in this process."""
    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="analysis-") as tmp:
        stored = Path(tmp) / f"model.{model.packaging}"
        storage.download_to(model.storage_key, stored)
        model_path = stored
        if model.packaging == "zip":
            unpacked = Path(tmp) / "unpacked"
            unpacked.mkdir()
            model_path = _unpack(stored, unpacked, settings.max_upload_bytes)
        found = validate_model_file(model_path, settings).analysis
    if found is None:
        raise InvalidModelProblem("the analysis could not read this model")
    return found


def delete(session: Session, storage: Storage, model_id: str, *, tenant_id: str) -> None:
    """Delete a model that no active job is using; its file goes once the row is gone."""
    model = get(session, model_id, tenant_id=tenant_id)
    if jobs_repository.count_active_for_model(session, model.id):
        raise ModelInUseProblem("the model has queued or running jobs: cancel them first")
    remove(session, storage, model)


def remove(session: Session, storage: Storage, model: ModelTable) -> None:
    """Delete the row; its file goes after the commit unless another row shares it."""
    key = model.storage_key
    repository.delete(session, model)
    release_after_commit(session, storage, key)


def remove_output_of(session: Session, storage: Storage, job_id: str) -> bool:
    """Delete the output a job recorded, if any (its job ended without success)."""
    output = repository.get_by_job(session, job_id)
    if output is None:
        return False
    remove(session, storage, output)
    return True
