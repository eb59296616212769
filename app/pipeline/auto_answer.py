"""An auto job's stored report (its plan per candidate, then the answer) and the answer's rows."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError

from app.compression.measure.metrics import Metrics
from app.compression.measure.objective import Judgement, Verdict
from app.compression.search.choose import CandidateResult, Choice
from app.compression.search.planner import CandidatePlan
from app.jobs.lifecycle import JobStatus
from app.jobs.schemas import CandidateOut, JobError, JobRecipe
from app.jobs.tables import JobTable


class PlannedCandidate(BaseModel):
    """Why a candidate exists: its plan's label and family, and the fallback round it is."""

    label: str
    family: str
    round: int = Field(default=0, description="0: planned; n: the n-th fallback of its family.")
    source: str | None = Field(
        default=None, description="The rejected candidate it falls back from."
    )
    fell_back: bool = Field(default=False, description="A fallback from it was considered.")

    @classmethod
    def of(
        cls, plan: CandidatePlan, *, round: int = 0, source: str | None = None
    ) -> PlannedCandidate:
        return cls(label=plan.label, family=plan.family, round=round, source=source)


class AutoReport(BaseModel):
    """The auto job's report column: the plans while it searches, the answer once it is done."""

    plans: dict[str, PlannedCandidate] = Field(default_factory=dict)
    candidates: list[CandidateOut] = Field(default_factory=list)
    explanation: str | None = None


def _metrics(child: JobTable) -> Metrics | None:
    if child.status != JobStatus.SUCCEEDED or not child.metrics:
        return None
    try:
        return Metrics.model_validate(child.metrics)
    except ValidationError:
        return None


def _judgement(child: JobTable) -> Judgement | None:
    try:
        return Judgement.model_validate(child.verdict_detail) if child.verdict_detail else None
    except ValidationError:
        return None


def candidate_result(child: JobTable, planned: PlannedCandidate | None) -> CandidateResult:
    """What the chooser needs from a candidate's row."""
    metrics, judgement = _metrics(child), _judgement(child)
    succeeded = child.status == JobStatus.SUCCEEDED
    verdict = (
        Verdict(child.verdict) if child.verdict else (Verdict.UNVERIFIED if succeeded else None)
    )
    return CandidateResult(
        job_id=child.id,
        label=planned.label if planned else "candidate",
        succeeded=succeeded and metrics is not None,
        compression_ratio=metrics.compression_ratio if metrics else None,
        speedup_ratio=metrics.speedup_ratio if metrics else None,
        latency_cv_original=metrics.original.latency_ms.cv if metrics else None,
        latency_cv_compressed=metrics.compressed.latency_ms.cv if metrics else None,
        metric=judgement.metric if judgement else None,
        delta=judgement.delta if judgement else None,
        verdict=verdict,
    )


def _rank(row: CandidateOut) -> tuple[bool, int, float]:
    verdicts = [Verdict.VERIFIED, Verdict.UNVERIFIED, Verdict.REJECTED, None]
    score = (row.compression_ratio or 0.0) * (row.speedup_ratio or 0.0)
    return (not row.recommended, verdicts.index(row.verdict), -score)


def answer(
    children: list[JobTable], results: list[CandidateResult], choice: Choice
) -> list[CandidateOut]:
    """One row per candidate, the recommendation first, then verified ones by size x speed."""
    rows = []
    for child, result in zip(children, results, strict=True):
        error = JobError.model_validate(child.error) if child.error else None
        rows.append(
            CandidateOut(
                job_id=child.id,
                label=result.label,
                status=JobStatus(child.status),
                recipe=JobRecipe.model_validate(child.recipe),
                compression_ratio=result.compression_ratio,
                speedup_ratio=result.speedup_ratio,
                speedup_noise=result.noise if result.measured else None,
                metric=result.metric,
                delta=result.delta,
                verdict=result.verdict if child.status == JobStatus.SUCCEEDED else None,
                pareto=child.id in choice.pareto,
                recommended=child.id == choice.recommended,
                error=error,
            )
        )
    return sorted(rows, key=_rank)
