"""Runs one job in the worker: passes, benchmark, store the output, record the outcome."""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from app.compression.analysis import InvalidModelError
from app.compression.base import PASS_REGISTRY, PassError
from app.compression.benchmark import benchmark_pair
from app.compression.recipes import Recipe
from app.db import session_scope, utcnow
from app.jobs import repository
from app.jobs.lifecycle import JobStatus
from app.onnx_models import repository as models_repository
from app.onnx_models import service as models_service
from app.settings import Settings, get_settings
from app.storage import Storage, StorageError, get_storage

log = logging.getLogger(__name__)


class TransientJobError(Exception):
    """A failure worth retrying (a storage hiccup); the task retries a bounded number of times."""


class JobCanceled(Exception):
    """The job was canceled (or finished elsewhere) while this worker ran it."""


@dataclass(frozen=True)
class JobSnapshot:
    """What the worker needs from the rows, read once so no session stays open during the work."""

    job_id: str
    tenant_id: str
    recipe: Recipe
    input_shapes: dict[str, list[int]] | None
    benchmark: dict[str, Any]
    model_id: str
    model_name: str
    model_key: str
    model_sha256: str


def _start(job_id: str) -> JobSnapshot | None:
    with session_scope() as session:
        job = repository.get(session, job_id)
        if job is None:
            log.warning("job %s does not exist; dropping its task", job_id)
            return None
        status = JobStatus(job.status)
        if status == JobStatus.QUEUED:
            started = repository.transition(
                session,
                job_id,
                JobStatus.QUEUED,
                JobStatus.RUNNING,
                started_at=utcnow(),
                heartbeat_at=utcnow(),
                attempts=job.attempts + 1,
                stage="starting",
                progress=0.0,
            )
            if not started:
                return None
        elif status != JobStatus.RUNNING:
            log.info("job %s is already %s; nothing to do", job_id, status)
            return None
        model = models_repository.get(session, job.tenant_id, job.model_id or "")
        if model is None:
            _fail_in(session, job_id, "model_deleted", "the input model was deleted")
            return None
        return JobSnapshot(
            job_id=job_id,
            tenant_id=job.tenant_id,
            recipe=Recipe.model_validate(job.recipe),
            input_shapes=job.input_shapes,
            benchmark=job.benchmark_options,
            model_id=model.id,
            model_name=model.name,
            model_key=model.storage_key,
            model_sha256=model.sha256,
        )
    return None


def _progress(job_id: str, stage: str, progress: float) -> None:
    with session_scope() as session:
        if not repository.report_progress(session, job_id, stage, progress):
            raise JobCanceled(job_id)


def _fail_in(session: Any, job_id: str, code: str, message: str) -> None:
    repository.transition(
        session,
        job_id,
        JobStatus.RUNNING,
        JobStatus.FAILED,
        error={"code": code, "message": message[:2000]},
        finished_at=utcnow(),
        stage="failed",
    )


def fail(job_id: str, code: str, message: str) -> None:
    """Record a failure; a job that is no longer running is left as it is."""
    with session_scope() as session:
        _fail_in(session, job_id, code, message)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _run_passes(
    snap: JobSnapshot, source: Path, workdir: Path
) -> tuple[Path, list[dict[str, Any]]]:
    total = len(snap.recipe.passes) + 1
    current, reports = source, []
    for index, config in enumerate(snap.recipe.configs()):
        _progress(snap.job_id, config.type, index / total)
        output = workdir / f"step-{index}-{config.type}.onnx"
        report = PASS_REGISTRY[config.type]().run(current, config, output)
        reports.append(report.model_dump(mode="json"))
        current = output
    return current, reports


def _finish(
    snap: JobSnapshot,
    storage: Storage,
    output: Path,
    reports: list[dict[str, Any]],
    metrics: dict[str, Any],
) -> None:
    _progress(snap.job_id, "store", 0.95)
    # Same input and same recipe give the same key: a retried job overwrites, never duplicates.
    key = f"outputs/{snap.model_sha256}/{snap.recipe.fingerprint()}.onnx"
    storage.put_file(key, output)
    warnings = [w for r in reports for w in r.get("warnings", [])] + metrics.get("warnings", [])
    try:
        _record_success(snap, storage, output, key, reports, metrics, warnings)
    except JobCanceled:
        with session_scope() as session:
            if models_repository.count_with_storage_key(session, key) == 0:
                storage.delete(key)
        raise


def _record_success(
    snap: JobSnapshot,
    storage: Storage,
    output: Path,
    key: str,
    reports: list[dict[str, Any]],
    metrics: dict[str, Any],
    warnings: list[str],
) -> None:
    with session_scope() as session:
        model = models_repository.get_by_job(session, snap.job_id) or models_service.record_output(
            session,
            storage,
            tenant_id=snap.tenant_id,
            name=f"{snap.model_name}-compressed",
            path=output,
            sha256=_sha256(output),
            key=key,
            parent_id=snap.model_id,
            job_id=snap.job_id,
        )
        done = repository.transition(
            session,
            snap.job_id,
            JobStatus.RUNNING,
            JobStatus.SUCCEEDED,
            output_model_id=model.id,
            metrics=metrics,
            report={"passes": reports, "warnings": warnings},
            progress=1.0,
            stage="done",
            finished_at=utcnow(),
        )
        if not done:
            raise JobCanceled(snap.job_id)  # rolls back the output row


def run_job(job_id: str, *, final_attempt: bool = True, settings: Settings | None = None) -> None:
    """Run a job to a terminal state. Raises TransientJobError when a retry may help."""
    settings = settings or get_settings()
    storage = get_storage()
    snap = _start(job_id)
    if snap is None:
        return
    try:
        with tempfile.TemporaryDirectory(prefix=f"job-{job_id}-") as tmp:
            workdir = Path(tmp)
            source = workdir / "input.onnx"
            _progress(job_id, "download", 0.0)
            storage.download_to(snap.model_key, source)
            output, reports = _run_passes(snap, source, workdir)
            _progress(job_id, "benchmark", 0.8)
            metrics = benchmark_pair(
                source,
                output,
                input_shapes=snap.input_shapes,
                runs=snap.benchmark.get("runs", settings.benchmark_runs),
                warmup=snap.benchmark.get("warmup", settings.benchmark_warmup),
                threads=snap.benchmark.get("threads", settings.benchmark_threads),
                time_budget_s=settings.benchmark_time_budget_s,
                default_dim=settings.default_symbolic_dim,
            )
            _finish(snap, storage, output, reports, metrics)
    except JobCanceled:
        log.info("job %s was canceled while running", job_id)
    except SoftTimeLimitExceeded:
        fail(job_id, "timeout", f"the job ran past its limit of {settings.job_time_limit_s} s")
    except PassError as exc:
        fail(job_id, exc.code, exc.message)
    except InvalidModelError as exc:
        fail(job_id, "invalid_output", f"a pass produced an invalid model: {exc}")
    except StorageError as exc:
        if not final_attempt:
            raise TransientJobError(str(exc)) from exc
        fail(job_id, "storage_unavailable", str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id)
        fail(job_id, "internal_error", f"{type(exc).__name__}: {exc}")
