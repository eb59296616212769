"""Domain operations on jobs; services flush, the caller's unit of work commits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.compression.graph import inputs as model_inputs
from app.compression.graph.analysis import TensorSpec
from app.compression.measure.objective import Objective
from app.compression.passes.recipes import PRESETS, Recipe, expand_preset
from app.datasets import service as datasets_service
from app.db import call_after_commit, session_scope, utcnow
from app.errors import (
    InvalidRecipeProblem,
    InvalidRequestProblem,
    NotFoundProblem,
    RateLimitedProblem,
    TooManyActiveJobsProblem,
)
from app.jobs import queue, repository
from app.jobs.lifecycle import TERMINAL_STATES, JobKind, JobStatus
from app.jobs.schemas import (
    CandidateOut,
    JobCreate,
    JobOut,
    JobRecipe,
    JobReport,
    PresetOut,
    WebhookEventType,
)
from app.jobs.tables import JobTable
from app.onnx_models import service as models_service
from app.onnx_models.tables import ModelTable
from app.settings import get_settings
from app.storage import Storage
from app.tenants import repository as tenants_repository
from app.webhooks.addresses import check_webhook_url

AUTO_PRESET = "auto"
AUTO_DESCRIPTION = (
    "Search: candidates chosen from the model's analysis run as child jobs, are judged on the "
    "evaluation data against `objective`, and the best one within budget is recommended."
)


def list_presets() -> list[PresetOut]:
    """Every preset with the recipe it expands to, and "auto" (no recipe of its own)."""
    return [
        *(
            PresetOut(
                name=name,
                description=p["description"],
                recipe=JobRecipe.model_validate(expand_preset(name).model_dump()),
            )
            for name, p in PRESETS.items()
        ),
        PresetOut(name=AUTO_PRESET, description=AUTO_DESCRIPTION, recipe=JobRecipe(passes=[])),
    ]


def _recipe_from_request(body: JobCreate) -> Recipe:
    if body.recipe is not None:
        return body.recipe
    if body.preset not in PRESETS:
        raise InvalidRecipeProblem(
            f"preset: unknown preset {body.preset!r}; known: {', '.join(sorted(PRESETS))}",
            field="preset",
        )
    return expand_preset(body.preset)


def check_inputs(
    model: ModelTable,
    input_shapes: dict[str, list[int]] | None,
    input_values: dict[str, Any] | None = None,
) -> None:
    """input_values fit the model's inputs (names, rank, dtype), then input_shapes do too."""
    specs = [TensorSpec.model_validate(spec) for spec in model.inputs]
    try:
        constants = model_inputs.constant_inputs(specs, input_values)
    except ValueError as exc:
        raise InvalidRequestProblem(f"input_values: {exc}", field="input_values") from exc
    if input_shapes is None:
        return
    try:
        model_inputs.resolve_input_shapes(
            specs, input_shapes, get_settings().default_symbolic_dim, constants
        )
    except ValueError as exc:
        raise InvalidRequestProblem(f"input_shapes: {exc}", field="input_shapes") from exc


def check_datasets(
    session: Session,
    model: ModelTable,
    *,
    tenant_id: str,
    input_values: dict[str, Any] | None = None,
    **ids: str | None,
) -> None:
    specs = [TensorSpec.model_validate(spec) for spec in model.inputs]
    given = set(input_values or {})
    for field, dataset_id in ids.items():
        if dataset_id is not None:
            datasets_service.get_for_model(
                session, dataset_id, specs, field, tenant_id=tenant_id, given=given
            )


def _check_tenant_limits(session: Session, *, tenant_id: str) -> None:
    settings = get_settings()
    # Held until the commit, so concurrent submits count each other's rows: none gets past.
    tenants_repository.lock_for_update(session, tenant_id=tenant_id)
    active = repository.count_active_for_tenant(session, tenant_id=tenant_id)
    if active >= settings.max_active_jobs_per_tenant:
        raise TooManyActiveJobsProblem(
            f"{active} jobs are queued or running; the limit is "
            f"{settings.max_active_jobs_per_tenant}: wait for some to end",
            retry_after_s=10,
        )
    a_minute_ago = utcnow() - timedelta(minutes=1)
    recent = repository.count_created_since(session, a_minute_ago, tenant_id=tenant_id)
    if recent >= settings.job_submissions_per_minute:
        raise RateLimitedProblem(
            f"at most {settings.job_submissions_per_minute} jobs a minute", retry_after_s=60
        )


def webhook_columns(webhook: str | None, events: list[WebhookEventType]) -> dict[str, Any]:
    """A new job's webhook and events filter, the URL checked (422 invalid_webhook or
    webhook_url_not_allowed)."""
    if webhook is None:
        return {"webhook": None, "webhook_events_filter": None}
    return {
        "webhook": check_webhook_url(webhook, get_settings()),
        "webhook_events_filter": [event.value for event in dict.fromkeys(events)],
    }


def submit(session: Session, job: JobTable) -> JobTable:
    """Record a job; it reaches the broker once the transaction commits (or the outbox later)."""
    _check_tenant_limits(session, tenant_id=job.tenant_id)
    repository.add(session, job)
    job_id, kind = job.id, job.kind
    call_after_commit(session, lambda: queue.enqueue(session_scope, job_id, kind))
    return job


def create_job(session: Session, body: JobCreate, *, tenant_id: str) -> JobTable:
    """Validate and record a compression job, or an auto job (a search over candidates)."""
    model = models_service.get(session, body.model_id, tenant_id=tenant_id)
    auto = body.preset == AUTO_PRESET
    recipe = JobRecipe(passes=[]) if auto else _recipe_from_request(body)
    # Plain jobs keep the objective they were given (their verdict is judged against it,
    # defaults otherwise); an auto job's search always needs one.
    objective = body.objective or (Objective() if auto else None)
    check_inputs(model, body.input_shapes, body.input_values)
    check_datasets(
        session, model, tenant_id=tenant_id, input_values=body.input_values,
        calibration_dataset_id=body.calibration_dataset_id, eval_dataset_id=body.eval_dataset_id,
    )  # fmt: skip
    return submit(
        session,
        JobTable(
            tenant_id=tenant_id,
            kind=(JobKind.AUTO if auto else JobKind.COMPRESS).value,
            model_id=model.id,
            status=JobStatus.QUEUED.value,
            progress=0.0,
            preset=body.preset,
            recipe=recipe.model_dump(mode="json"),
            input_shapes=body.input_shapes,
            input_values=body.input_values,
            benchmark_options=body.benchmark.model_dump(),
            calibration_dataset_id=body.calibration_dataset_id,
            eval_dataset_id=body.eval_dataset_id,
            objective=objective.model_dump(mode="json") if objective else None,
            attempts=0,
            **webhook_columns(body.webhook, body.webhook_events_filter),
        ),
    )


def create_candidate(session: Session, parent: JobTable, recipe: Recipe) -> JobTable:
    """Record one candidate of an auto job: a compress job with the parent's data and goal.

    Not counted against the tenant's limits: the user asked once, for the parent. The caller
    enqueues it after the commit."""
    return repository.add(
        session,
        JobTable(
            tenant_id=parent.tenant_id,
            kind=JobKind.CANDIDATE.value,
            parent_job_id=parent.id,
            model_id=parent.model_id,
            status=JobStatus.QUEUED.value,
            progress=0.0,
            preset=None,
            recipe=recipe.model_dump(mode="json"),
            input_shapes=parent.input_shapes,
            input_values=parent.input_values,
            benchmark_options=parent.benchmark_options,
            calibration_dataset_id=parent.calibration_dataset_id,
            eval_dataset_id=parent.eval_dataset_id,
            objective=parent.objective,
            attempts=0,
        ),
    )


def get(session: Session, job_id: str, *, tenant_id: str) -> JobTable:
    """The job, or NotFoundProblem (also for another tenant's job)."""
    job = repository.get(session, job_id, tenant_id=tenant_id)
    if job is None:
        raise NotFoundProblem(f"no job with id {job_id!r}")
    return job


def cancel(session: Session, storage: Storage, job_id: str, *, tenant_id: str) -> JobTable:
    """Cancel a queued or running job, dropping any output it recorded; a finished job is
    returned unchanged. Canceling an auto job cancels its candidates."""
    job = get(session, job_id, tenant_id=tenant_id)
    if job.kind == JobKind.AUTO:
        # Taken before any row, as the worker advancing the search takes it: no deadlock.
        repository.lock_job(session, job.id)
    cancel_row(session, storage, job)
    if job.kind == JobKind.AUTO and job.status == JobStatus.CANCELED:
        for child in repository.list_children(session, job.id):
            cancel_row(session, storage, child)
    return job


def cancel_row(session: Session, storage: Storage, job: JobTable) -> None:
    """Cancel one job unless it already ended; its output goes with it."""
    while job.status not in TERMINAL_STATES:
        current = JobStatus(job.status)
        if repository.transition(
            session, job.id, current, JobStatus.CANCELED, finished_at=utcnow(), stage="canceled"
        ):
            # Past its compress stage (at benchmark_queued or benchmark) the output is
            # recorded: a canceled job leaves none behind. Its object goes after the commit.
            models_service.remove_output_of(session, storage, job.id)
            break
        session.refresh(job)  # it moved on under us: look again
    session.refresh(job)


def report(session: Session, job_id: str, *, tenant_id: str) -> JobReport:
    """The per-pass report of a job, as far as it got."""
    job = get(session, job_id, tenant_id=tenant_id)
    stored: dict[str, Any] = job.report or {}
    return JobReport(
        job_id=job.id,
        status=job.status,
        passes=stored.get("passes", []),
        weights=stored.get("weights", []),
        sensitivity=stored.get("sensitivity", []),
        warnings=to_out(job).warnings,
        metrics=job.metrics,
        candidates=to_out(job).candidates,
        explanation=stored.get("explanation"),
    )


def to_out(job: JobTable) -> JobOut:
    out = JobOut.model_validate(job)
    if job.kind == JobKind.AUTO:
        stored = job.report or {}
        out.candidates = [CandidateOut.model_validate(row) for row in stored.get("candidates", [])]
        out.explanation = stored.get("explanation")
    # The passes' warnings, then the benchmark's, each said once.
    out.warnings = list(
        dict.fromkeys(
            [*(job.report or {}).get("warnings", []), *(job.metrics or {}).get("warnings", [])]
        )
    )
    return out
