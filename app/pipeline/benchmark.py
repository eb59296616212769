"""The benchmark stage, in the worker: measure a model (against its baseline) and finish the job."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from app.compression.measure.metrics import Metrics
from app.compression.measure.objective import Judgement, Objective
from app.compression.measure.options import BenchmarkOptions, MeasureOptions
from app.compression.measure.verdict import judge, verdict_warning
from app.datasets import repository as datasets_repository
from app.db import session_scope, utcnow
from app.jobs import repository
from app.jobs.lifecycle import OUTPUT_KINDS, JobStatus
from app.jobs.tables import JobTable
from app.onnx_models import repository as models_repository
from app.onnx_models.tables import ModelTable
from app.pipeline import frame, stopping
from app.pipeline.frame import StageError
from app.pipeline.sandbox import run_in_child
from app.pipeline.sandbox_protocol import BenchmarkRequest, BenchmarkResult
from app.settings import Settings, get_settings
from app.storage import Storage, get_storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkInputs:
    subject: ModelTable
    baseline: ModelTable | None
    eval_key: str | None


def _inputs(job: JobTable) -> BenchmarkInputs:
    """Compress jobs measure their output against their input; benchmark jobs their model."""
    with session_scope() as session:
        model = models_repository.get(session, job.model_id or "", tenant_id=job.tenant_id)
        if model is None:
            raise StageError("model_deleted", "the model to benchmark was deleted")
        if job.kind in OUTPUT_KINDS:
            subject, baseline = models_repository.get_by_job(session, job.id), model
            if subject is None:
                raise StageError("output_missing", "the compress stage left no output model")
        else:
            subject, baseline = model, None
            if job.baseline_model_id:
                baseline = models_repository.get(
                    session, job.baseline_model_id, tenant_id=job.tenant_id
                )
                if baseline is None:
                    raise StageError("model_deleted", "the baseline model was deleted")
        eval_key = None
        if job.eval_dataset_id:
            dataset = datasets_repository.get(session, job.eval_dataset_id, tenant_id=job.tenant_id)
            if dataset is None:
                raise StageError("dataset_deleted", "the evaluation dataset was deleted")
            eval_key = dataset.storage_key
        for row in (subject, baseline):
            if row is not None:
                session.expunge(row)
        return BenchmarkInputs(subject=subject, baseline=baseline, eval_key=eval_key)


def benchmark_options(stored: dict[str, Any], settings: Settings) -> BenchmarkOptions:
    """The job's benchmark options; runs, warmup and threads it left out come from the settings."""
    from_settings = {
        "runs": settings.benchmark_runs,
        "warmup": settings.benchmark_warmup,
        "threads": settings.benchmark_threads,
    }
    return BenchmarkOptions.model_validate({**from_settings, **stored})


def _measure(
    job: JobTable, inputs: BenchmarkInputs, storage: Storage, settings: Settings, workdir: Path
) -> BenchmarkResult:
    subject = frame.fetch_model(
        storage, inputs.subject.storage_key, inputs.subject.packaging, workdir / "subject"
    )
    eval_path = None
    if inputs.eval_key:
        eval_path = workdir / "eval.npz"
        storage.download_to(inputs.eval_key, eval_path)
    baseline = None
    if inputs.baseline is not None:
        baseline = frame.fetch_model(
            storage, inputs.baseline.storage_key, inputs.baseline.packaging, workdir / "baseline"
        )
    options = MeasureOptions(
        **benchmark_options(job.benchmark_options, settings).model_dump(),
        input_shapes=job.input_shapes,
        input_values=job.input_values,
        time_budget_s=settings.benchmark_time_budget_s,
        default_dim=settings.default_symbolic_dim,
        eval_dataset_path=eval_path,
        blank_index=job_objective(job).blank_index,
    )
    # Timing and evaluation run the user's model in native code: in a child, under limits.
    return run_in_child(
        BenchmarkRequest(model=subject, baseline=baseline, options=options),
        memory_limit_mb=settings.job_memory_limit_mb,
        timeout_s=settings.job_time_limit_s,
        should_stop=partial(stopping.stop_requested, job.id),
    )


def job_objective(job: JobTable) -> Objective:
    """The job's objective, or the default one (a budget of one point) when it gave none."""
    return Objective() if job.objective is None else Objective.model_validate(job.objective)


def _judged(job: JobTable, metrics: Metrics) -> tuple[Judgement, Metrics]:
    """The pair's verdict, and the metrics with a warning when it is not verified."""
    judgement = judge(metrics, job_objective(job))
    warning = verdict_warning(judgement)
    if warning is not None:
        metrics = metrics.model_copy(update={"warnings": [*(metrics.warnings or []), warning]})
    return judgement, metrics


def _finish(job: JobTable, inputs: BenchmarkInputs, measured: BenchmarkResult) -> None:
    output_id = inputs.subject.id if job.kind in OUTPUT_KINDS else None
    verdict: dict[str, Any] = {}
    report_extra: dict[str, Any] = {}
    measured_metrics = measured.metrics
    if isinstance(measured_metrics, Metrics):  # a pair: judged, its per-tensor rows reported
        judgement, measured_metrics = _judged(job, measured_metrics)
        verdict = {
            "verdict": judgement.verdict.value,
            "verdict_detail": judgement.model_dump(mode="json", exclude_none=True),
        }
        report_extra = {
            "weights": [row.model_dump(mode="json", exclude_none=True) for row in measured.weights],
            "sensitivity": [
                row.model_dump(mode="json", exclude_none=True) for row in measured.sensitivity
            ],
        }
    metrics = measured_metrics.model_dump(mode="json", exclude_none=True)
    with session_scope() as session:
        current = repository.get_for_worker(session, job.id)
        report = {**((current.report if current else None) or {}), **report_extra}
        # A job that ended without us (canceled) stays as it is; run_benchmark drops its output.
        repository.transition(
            session, job.id, JobStatus.RUNNING, JobStatus.SUCCEEDED,
            metrics=metrics, report=report, output_model_id=output_id,
            progress=1.0, stage="done", finished_at=utcnow(), **verdict,
        )  # fmt: skip


def run_benchmark(
    job_id: str, *, final_attempt: bool = True, settings: Settings | None = None
) -> None:
    """Measure the job's models and finish it; failures end the job."""
    settings = settings or get_settings()
    job = frame.claim(job_id, handoff_stage=frame.BENCHMARK_HANDOFF)
    if job is None:
        return
    storage = get_storage()
    with frame.working_on(
        job_id, final_attempt=final_attempt, time_limit_s=settings.job_time_limit_s
    ):
        inputs = _inputs(job)
        frame.progress(job_id, "benchmark", 0.85)
        with tempfile.TemporaryDirectory(prefix=f"bench-{job_id}-") as tmp:
            measured = _measure(job, inputs, storage, settings, Path(tmp))
        frame.progress(job_id, "record", 0.98)
        _finish(job, inputs, measured)
    # Reached when the job ended here (a retry raises past this): a compress job that failed
    # or was canceled at this stage keeps no output.
    stopping.drop_output_if_unsuccessful(job_id, storage)
