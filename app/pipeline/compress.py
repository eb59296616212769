"""The compress stage of a job, in the worker: run the passes, store and record the output."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from app.compression.passes.base import PassContext
from app.compression.passes.recipes import Recipe
from app.datasets import repository as datasets_repository
from app.db import session_scope
from app.errors import InvalidModelProblem
from app.jobs import queue, repository
from app.jobs.tables import JobTable
from app.onnx_models import repository as models_repository
from app.onnx_models import service as models_service
from app.pipeline import frame, stopping
from app.pipeline.frame import BENCHMARK_HANDOFF, JobCanceled, StageError
from app.pipeline.sandbox import run_in_child
from app.pipeline.sandbox_protocol import PassRequest
from app.settings import Settings, get_settings
from app.storage import Storage, get_storage
from app.storage.objects import content_key, store_object

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompressInputs:
    model: frame.ModelRef
    calibration_key: str | None
    calibration_sha256: str | None


def _inputs(job: JobTable) -> CompressInputs | None:
    """What the passes need; None when this job's output already exists (a redelivery)."""
    with session_scope() as session:
        if models_repository.get_by_job(session, job.id) is not None:
            return None
        model = models_repository.get(session, job.model_id or "", tenant_id=job.tenant_id)
        if model is None:
            raise StageError("model_deleted", "the input model was deleted")
        calibration = (
            datasets_repository.get(session, job.calibration_dataset_id, tenant_id=job.tenant_id)
            if job.calibration_dataset_id
            else None
        )
        if job.calibration_dataset_id and calibration is None:
            raise StageError("dataset_deleted", "the calibration dataset was deleted")
        return CompressInputs(
            model=frame.ModelRef(
                model.id, model.name, model.storage_key, model.packaging, model.sha256
            ),
            calibration_key=calibration.storage_key if calibration else None,
            calibration_sha256=calibration.sha256 if calibration else None,
        )


def _run_passes(
    job: JobTable, source: Path, workdir: Path, context: PassContext, settings: Settings
) -> tuple[Path, list[dict[str, Any]]]:
    recipe = Recipe.model_validate(job.recipe)
    total = len(recipe.passes) + 1
    current, reports = source, []
    for index, config in enumerate(recipe.configs()):
        frame.progress(job.id, config.type, 0.7 * index / total)
        output = workdir / f"step-{index}-{config.type}.onnx"
        # Each pass runs native code on a user's file: in a child, under limits.
        done = run_in_child(
            PassRequest(
                config=config,
                input=current,
                output=output,
                context=context,
                check_samples=settings.pass_check_samples,
            ),
            memory_limit_mb=settings.job_memory_limit_mb,
            timeout_s=settings.job_time_limit_s,
            should_stop=partial(stopping.stop_requested, job.id),
        )
        reports.append(done.report.model_dump(mode="json"))
        current = output
    return current, reports


def _compress(job: JobTable, inputs: CompressInputs, storage: Storage, settings: Settings) -> None:
    with tempfile.TemporaryDirectory(prefix=f"job-{job.id}-") as tmp:
        workdir = Path(tmp)
        frame.progress(job.id, "download", 0.0)
        source = frame.fetch_model(
            storage, inputs.model.storage_key, inputs.model.packaging, workdir / "input"
        )
        context = PassContext(
            input_shapes=job.input_shapes,
            input_values=job.input_values,
            default_dim=settings.default_symbolic_dim,
        )
        if inputs.calibration_key:
            context.calibration_path = workdir / "calibration.npz"
            storage.download_to(inputs.calibration_key, context.calibration_path)
        output, reports = _run_passes(job, source, workdir, context, settings)
        frame.progress(job.id, "store", 0.75)
        stored, packaging = frame.package_output(output)
        # Keyed by content, like every stored file: a retry that writes the same bytes finds its
        # object in place, and two jobs with one result share one object.
        sha256 = frame.sha256_of(stored)
        key = content_key(sha256, packaging)
        warnings = [w for r in reports for w in r.get("warnings", [])]
        try:
            with session_scope() as session:
                # A rollback below (a cancel meanwhile, an invalid output, any error) frees the
                # object again unless another row shares it.
                store_object(session, storage, key, stored)
                file = models_service.ModelFile(
                    model_path=output, stored_path=stored, packaging=packaging,
                    sha256=sha256, key=key,
                )  # fmt: skip
                models_service.record_output(
                    session, file, tenant_id=job.tenant_id,
                    name=f"{inputs.model.name}-compressed", parent_id=inputs.model.id,
                    job_id=job.id,
                )  # fmt: skip
                if not repository.set_report(
                    session, job.id, {"passes": reports, "warnings": warnings}
                ):
                    raise JobCanceled(job.id)  # rolls back the output row
        except InvalidModelProblem as exc:
            # onnxruntime ran it, but the ONNX checker refuses to record it as a model.
            raise StageError(
                "invalid_output", f"the passes wrote a model that is not valid ONNX: {exc}"
            ) from exc


def run_compress(
    job_id: str, *, final_attempt: bool = True, settings: Settings | None = None
) -> None:
    """Run the passes of a job and hand it to the benchmark queue; failures end the job."""
    settings = settings or get_settings()
    job = frame.claim(job_id)
    if job is None:
        return
    storage = get_storage()
    with frame.working_on(
        job_id, final_attempt=final_attempt, time_limit_s=settings.job_time_limit_s
    ):
        inputs = _inputs(job)
        if inputs is not None:
            _compress(job, inputs, storage, settings)
        frame.progress(job_id, BENCHMARK_HANDOFF, 0.8)
        queue.send_benchmark(job_id)
    # Reached when the job ended here (a retry raises past this): failed or canceled, it keeps
    # no output.
    stopping.drop_output_if_unsuccessful(job_id, storage)
