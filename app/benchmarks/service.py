"""Benchmark jobs: measure any stored model, alone or against a baseline."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.benchmarks.schemas import BenchmarkCreate
from app.compression.measure.options import BenchmarkOptions
from app.jobs import service as jobs_service
from app.jobs.lifecycle import JobKind, JobStatus
from app.jobs.tables import JobTable
from app.onnx_models import service as models_service


def create_benchmark(session: Session, body: BenchmarkCreate, *, tenant_id: str) -> JobTable:
    """Validate and record a benchmark job; it runs on the benchmark queue."""
    model = models_service.get(session, body.model_id, tenant_id=tenant_id)
    if body.baseline_model_id is not None:
        models_service.get(session, body.baseline_model_id, tenant_id=tenant_id)
    jobs_service.check_inputs(model, body.input_shapes, body.input_values)
    jobs_service.check_datasets(
        session, model, tenant_id=tenant_id, input_values=body.input_values,
        eval_dataset_id=body.eval_dataset_id,
    )  # fmt: skip
    return jobs_service.submit(
        session,
        JobTable(
            tenant_id=tenant_id,
            kind=JobKind.BENCHMARK.value,
            model_id=model.id,
            baseline_model_id=body.baseline_model_id,
            status=JobStatus.QUEUED.value,
            progress=0.0,
            recipe={"passes": []},
            input_shapes=body.input_shapes,
            input_values=body.input_values,
            benchmark_options=body.model_dump(include=set(BenchmarkOptions.model_fields)),
            eval_dataset_id=body.eval_dataset_id,
            attempts=0,
            **jobs_service.webhook_columns(body.webhook, body.webhook_events_filter),
        ),
    )
