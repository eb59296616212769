"""An auto job in the worker: plan its candidates, fan them out as child jobs, advance the search.

The parent holds no worker while its candidates run: it waits at stage `searching`. Each
candidate that ends sends an `advance` task for it, and every reaper sweep advances searching
parents too (a lost message or a lost worker never strands one). `advance` is idempotent: a
per-parent lock serializes it, and it only reads the children's rows.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import timedelta
from functools import partial
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.compression.graph.model_analysis import ModelAnalysis, analyze_model
from app.compression.measure.objective import Objective, Verdict
from app.compression.passes.recipes import Recipe
from app.compression.search.choose import NO_REAL_DATA, choose
from app.compression.search.planner import CandidatePlan, fallback_plan, plan_candidates
from app.db import call_after_commit, session_scope, utcnow
from app.jobs import queue, repository
from app.jobs import service as jobs_service
from app.jobs.lifecycle import TERMINAL_STATES, JobKind, JobStatus
from app.jobs.tables import JobTable
from app.onnx_models import repository as models_repository
from app.pipeline import frame
from app.pipeline.auto_answer import (
    AutoReport,
    PlannedCandidate,
    answer,
    candidate_result,
)
from app.pipeline.frame import JobCanceled, StageError
from app.settings import Settings, get_settings
from app.storage import Storage, get_storage

log = logging.getLogger(__name__)

SEARCHING = "searching"
# Fallback bounds: rounds per candidate family, and all candidates as a multiple of the plan's.
MAX_FALLBACK_ROUNDS = 2
FALLBACK_TOTAL_FACTOR = 2
DEFAULT_MAX_CANDIDATES = 6
DYNAMIC_SUFFIX = "_quant"


def run_auto(job_id: str, *, final_attempt: bool = True, settings: Settings | None = None) -> None:
    """Plan the auto job's candidates and send them off; the job then waits at `searching`."""
    settings = settings or get_settings()
    job = frame.claim(job_id)
    if job is None:
        return
    with frame.working_on(
        job_id, final_attempt=final_attempt, time_limit_s=settings.job_time_limit_s
    ):
        with session_scope() as session:
            planned_before = bool(repository.list_children(session, job_id))
        if planned_before:  # a redelivery, or a takeover: the search is already out there
            frame.progress(job_id, SEARCHING, job.progress)
        else:
            _fan_out(job, get_storage())
    advance(job_id)


def _analysis(job: JobTable, storage: Storage) -> ModelAnalysis:
    """The model's stored analysis, or one computed now from its file."""
    with session_scope() as session:
        model = models_repository.get(session, job.model_id or "", tenant_id=job.tenant_id)
        if model is None:
            raise StageError("model_deleted", "the input model was deleted")
        stored, key, packaging = model.analysis, model.storage_key, model.packaging
    if stored:
        try:
            return ModelAnalysis.model_validate(stored)
        except ValidationError:
            log.warning("job %s: the model's stored analysis is outdated; redoing it", job.id)
    with tempfile.TemporaryDirectory(prefix=f"auto-{job.id}-") as tmp:
        return analyze_model(frame.fetch_model(storage, key, packaging, Path(tmp)))


def _fan_out(job: JobTable, storage: Storage) -> None:
    frame.progress(job.id, "analyzing", 0.0)
    analysis = _analysis(job, storage)
    objective = Objective.model_validate(job.objective or {})
    plans = plan_candidates(
        analysis, objective, has_calibration=job.calibration_dataset_id is not None
    )
    with session_scope() as session:
        repository.lock_job(session, job.id)
        parent = repository.get_for_worker(session, job.id)
        if parent is None or parent.status != JobStatus.RUNNING:
            raise JobCanceled(job.id)
        report = AutoReport()
        for plan in plans:
            _add_candidate(session, parent, report, plan, PlannedCandidate.of(plan))
        stored = repository.set_report(session, job.id, report.model_dump(mode="json"))
        if not stored or not repository.report_progress(session, job.id, SEARCHING, 0.0):
            raise JobCanceled(job.id)  # rolls the candidates back
    log.info("auto job %s: %d candidates sent", job.id, len(plans))


def _add_candidate(
    session: Session,
    parent: JobTable,
    report: AutoReport,
    plan: CandidatePlan,
    planned: PlannedCandidate,
) -> None:
    child = jobs_service.create_candidate(session, parent, plan.recipe)
    report.plans[child.id] = planned
    # Sent once the rows are committed; a failed send leaves it to the outbox sweep.
    call_after_commit(
        session, partial(queue.enqueue, session_scope, child.id, JobKind.CANDIDATE.value)
    )


def advance(parent_id: str) -> None:
    """Look at an auto job's candidates: fall back from rejected ones, or finish the search."""
    with session_scope() as session:
        repository.lock_job(session, parent_id)
        parent = repository.get_for_worker(session, parent_id)
        if (
            parent is None
            or parent.kind != JobKind.AUTO
            or parent.status != JobStatus.RUNNING
            or parent.stage != SEARCHING
        ):
            return  # canceled, finished, or still planning: nothing to advance
        report = AutoReport.model_validate(parent.report or {})
        objective = Objective.model_validate(parent.objective or {})
        children = repository.list_children(session, parent_id)
        started = parent.started_at or parent.created_at
        budget = objective.time_budget_s
        added = 0
        if budget is not None and utcnow() >= started + timedelta(seconds=budget):
            storage = get_storage()
            for child in children:
                jobs_service.cancel_row(session, storage, child)
        else:
            added = _fall_back(session, parent, report, children, objective)
        ended = sum(1 for c in children if c.status in TERMINAL_STATES)
        if added == 0 and ended == len(children):
            _finish(session, parent, report, children, objective)
            return
        repository.set_report(session, parent_id, report.model_dump(mode="json"))
        repository.report_progress(session, parent_id, SEARCHING, ended / (len(children) + added))


def _fall_back(
    session: Session,
    parent: JobTable,
    report: AutoReport,
    children: list[JobTable],
    objective: Objective,
) -> int:
    """New candidates from rejected quantized ones, their most sensitive nodes kept in float."""
    limit = FALLBACK_TOTAL_FACTOR * (objective.max_candidates or DEFAULT_MAX_CANDIDATES)
    added = 0
    for child in children:
        planned = report.plans.get(child.id)
        if (
            planned is None
            or planned.fell_back
            or child.status != JobStatus.SUCCEEDED
            or child.verdict != Verdict.REJECTED
        ):
            continue
        planned.fell_back = True
        family_rounds = sum(
            1 for p in report.plans.values() if p.family == planned.family and p.round
        )
        if planned.round >= MAX_FALLBACK_ROUNDS or family_rounds >= MAX_FALLBACK_ROUNDS:
            continue
        if len(report.plans) >= limit:
            break
        rows = (child.report or {}).get("sensitivity", [])
        sensitive = [
            original_node_name(str(row["node"]))
            for row in rows
            if isinstance(row, dict) and row.get("node")
        ]
        plan = CandidatePlan(
            label=planned.label, recipe=Recipe.model_validate(child.recipe), family=planned.family
        )
        fallback = fallback_plan(plan, sensitive, planned.round)  # round 0: the first fallback
        if fallback is None:
            continue
        _add_candidate(
            session, parent, report, fallback,
            PlannedCandidate.of(fallback, round=planned.round + 1, source=child.id),
        )  # fmt: skip
        added += 1
    return added


def original_node_name(compressed_node: str) -> str:
    """The input model's node a sensitivity row's node came from: onnxruntime's dynamic
    quantizer names its replacement `<node>_quant`; QDQ keeps the node's own name."""
    return compressed_node.removesuffix(DYNAMIC_SUFFIX)


def _finish(
    session: Session,
    parent: JobTable,
    report: AutoReport,
    children: list[JobTable],
    objective: Objective,
) -> None:
    results = [candidate_result(child, report.plans.get(child.id)) for child in children]
    choice = choose(results, objective)
    chosen = next((c for c in children if c.id == choice.recommended), None)
    report.candidates, report.explanation = answer(children, results, choice), choice.explanation
    if chosen is not None:
        verdict, detail = chosen.verdict, chosen.verdict_detail
    else:
        # Nothing recommended: over budget, or nothing could be checked on real data.
        unchecked = choice.reason == NO_REAL_DATA
        verdict = (Verdict.UNVERIFIED if unchecked else Verdict.REJECTED).value
        detail = None
    repository.transition(
        session, parent.id, JobStatus.RUNNING, JobStatus.SUCCEEDED,
        where=(JobTable.stage == SEARCHING,),
        report=report.model_dump(mode="json"),
        output_model_id=chosen.output_model_id if chosen else None,
        metrics=chosen.metrics if chosen else None,
        verdict=verdict, verdict_detail=detail, recommendation_reason=choice.reason,
        progress=1.0, stage="done", finished_at=utcnow(),
    )  # fmt: skip
    log.info("auto job %s: %s", parent.id, choice.explanation)


def advance_searching(limit: int = 100) -> int:
    """The reaper's safety net: advance every auto job waiting on its candidates."""
    with session_scope() as session:
        parent_ids = repository.list_searching_auto_ids(session, SEARCHING, limit)
    for parent_id in parent_ids:
        try:
            advance(parent_id)
        except Exception:
            log.warning("could not advance auto job %s; next sweep", parent_id, exc_info=True)
    return len(parent_ids)


def notify_parent(job_id: str) -> None:
    """A candidate that ended asks its auto job to look again (the sweep does if this fails)."""
    with session_scope() as session:
        job = repository.get_for_worker(session, job_id)
        if job is None or job.kind != JobKind.CANDIDATE or job.status not in TERMINAL_STATES:
            return
        parent_id = job.parent_job_id
    if parent_id is None:
        return
    try:
        queue.send_advance(parent_id)
    except queue.BrokerError as exc:
        log.warning("could not ask auto job %s to advance (%s); the sweep will", parent_id, exc)
