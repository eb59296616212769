"""Request and response shapes of the jobs API."""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from app.compression.measure.metrics import (
    Metrics,
    ModelMetrics,
    NodeSensitivityRow,
    WeightErrorRow,
)
from app.compression.measure.objective import Judgement, Objective, Verdict
from app.compression.measure.options import (
    INPUT_VALUES_DESCRIPTION,
    BenchmarkOptions,
    InputValue,
)
from app.compression.passes.base import PassReport
from app.compression.passes.recipes import AnyPassConfig, Recipe
from app.jobs.lifecycle import JobKind, JobStatus

# Bounds on a client's input_shapes, checked when the request arrives: a shape past them could
# only fail later, in a worker, as an allocation no machine makes.
MAX_INPUT_DIM = 2**20
MAX_INPUT_RANK = 16
MAX_INPUT_ELEMENTS = 2**30


def _bounded_element_counts(shapes: dict[str, list[int]]) -> dict[str, list[int]]:
    for name, dims in shapes.items():
        if (count := math.prod(dims)) > MAX_INPUT_ELEMENTS:
            raise ValueError(
                f"{name!r} would hold {count} elements; at most {MAX_INPUT_ELEMENTS} per input"
            )
    return shapes


InputDim = Annotated[int, Field(ge=1, le=MAX_INPUT_DIM)]
InputShapes = Annotated[
    dict[str, Annotated[list[InputDim], Field(max_length=MAX_INPUT_RANK)]],
    Field(max_length=1024),
    AfterValidator(_bounded_element_counts),
]


class WebhookEventType(StrEnum):
    START = "start"  # the job started running (first time only)
    COMPLETED = "completed"  # it reached succeeded, failed or canceled


WEBHOOK_DESCRIPTION = (
    "An http(s) URL that receives the job (as GET /v1/jobs/{id} shows it) as a signed POST on "
    "each event of `webhook_events_filter` (Standard Webhooks; the key is at "
    "GET /v1/webhooks/default/secret)."
)
WebhookEventsFilter = Annotated[
    list[WebhookEventType],
    Field(
        min_length=1,
        max_length=2,
        description='Events that are delivered: "start", "completed" (default both).',
    ),
]


def all_webhook_events() -> list[WebhookEventType]:
    return list(WebhookEventType)


class JobRecipe(Recipe):
    """A job's recipe as it runs: the passes of a benchmark job's recipe are none."""

    passes: list[AnyPassConfig] = Field(max_length=16, description="The passes, in order.")


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(max_length=64)
    preset: str | None = Field(default=None, description="A preset name from GET /v1/presets.")
    recipe: Recipe | None = Field(
        default=None, description="An ordered list of passes; each is validated by its config."
    )
    calibration_dataset_id: str | None = None
    eval_dataset_id: str | None = None
    input_shapes: InputShapes | None = Field(
        default=None,
        description=f"Fixed shapes for inputs with symbolic dims, by input name; each dim 1 to "
        f"{MAX_INPUT_DIM}, at most {MAX_INPUT_ELEMENTS} elements per input.",
    )
    input_values: dict[str, InputValue] | None = Field(
        default=None, description=INPUT_VALUES_DESCRIPTION
    )
    benchmark: BenchmarkOptions = Field(default_factory=BenchmarkOptions)
    objective: Objective | None = Field(
        default=None,
        description='The goal: with preset "auto" the search aims at it; with any preset or recipe '
        "the job's verdict is judged against it (max_accuracy_drop 0.01 when not given).",
    )
    webhook: str | None = Field(default=None, max_length=2048, description=WEBHOOK_DESCRIPTION)
    webhook_events_filter: WebhookEventsFilter = Field(default_factory=all_webhook_events)

    @model_validator(mode="after")
    def _one_of_preset_or_recipe(self) -> JobCreate:
        if (self.preset is None) == (self.recipe is None):
            raise ValueError("give exactly one of 'preset' or 'recipe'")
        return self


class JobError(BaseModel):
    code: str
    message: str


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: JobKind = Field(
        description="compress: passes then benchmark; benchmark: measure only; auto: a search "
        "that runs candidates and recommends one; candidate: one job of such a search."
    )
    parent_job_id: str | None = Field(default=None, description="A candidate's auto job.")
    model_id: str | None
    baseline_model_id: str | None = None
    calibration_dataset_id: str | None = None
    eval_dataset_id: str | None = None
    status: JobStatus
    attempts: int = Field(description="Runs so far; more than 1 after a worker was lost.")
    progress: float
    stage: str | None
    preset: str | None
    recipe: JobRecipe
    input_shapes: dict[str, Any] | None
    input_values: dict[str, Any] | None = None
    benchmark: BenchmarkOptions = Field(validation_alias="benchmark_options")
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    output_model_id: str | None
    metrics: Metrics | ModelMetrics | None = Field(
        description="A compress job's metrics (or a benchmark's against a baseline); a "
        "benchmark of one model has that model's block. None until the job succeeds."
    )
    warnings: list[str] = Field(default_factory=list)
    objective: Objective | None = Field(default=None, description="The goal the job was given.")
    verdict: Verdict | None = Field(
        default=None,
        description="verified: within budget on real data; rejected: over budget (kept for "
        "inspection, never recommended); unverified: synthetic inputs only. None until done.",
    )
    verdict_detail: Judgement | None = Field(
        default=None, description="What the verdict rests on: metric, values, delta, basis."
    )
    recommendation_reason: str | None = Field(
        default=None,
        description="Auto jobs: why no candidate was recommended (e.g. "
        "no_candidate_within_budget), else null.",
    )
    candidates: list[CandidateOut] = Field(
        default_factory=list, description="Auto jobs: every candidate, best first."
    )
    explanation: str | None = Field(
        default=None, description="Auto jobs: the choice (or why none) in one sentence."
    )
    webhook: str | None = Field(default=None, description="Where the job's events are POSTed.")
    webhook_events_filter: list[WebhookEventType] | None = Field(
        default=None, description="The events delivered to `webhook`; null without a webhook."
    )


class CandidateOut(BaseModel):
    """One candidate of an auto job, as its table row shows it."""

    job_id: str
    label: str = Field(description='What was tried, e.g. "int8 dynamic, per-channel".')
    status: JobStatus
    recipe: JobRecipe
    compression_ratio: float | None = None
    speedup_ratio: float | None = None
    speedup_noise: float | None = Field(
        default=None, description="Run-to-run spread of the speedup (relative), from both cvs."
    )
    metric: str | None = None
    delta: float | None = Field(default=None, description="Metric change (compressed - original).")
    verdict: Verdict | None = None
    pareto: bool = Field(
        default=False, description="On the Pareto front of size, latency and accuracy."
    )
    recommended: bool = False
    error: JobError | None = None


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class JobReport(BaseModel):
    job_id: str
    status: JobStatus
    passes: list[PassReport] = Field(description="What each pass did, in recipe order.")
    weights: list[WeightErrorRow] = Field(
        default_factory=list,
        description="Per weight tensor: |w - dequant(w)| mean and max, worst first.",
    )
    sensitivity: list[NodeSensitivityRow] = Field(
        default_factory=list,
        description="Per quantized node: output error against the original, worst first.",
    )
    warnings: list[str] = Field(default_factory=list)
    metrics: Metrics | ModelMetrics | None
    candidates: list[CandidateOut] = Field(
        default_factory=list, description="Auto jobs: every candidate, best first."
    )
    explanation: str | None = Field(
        default=None, description="Auto jobs: the choice (or why none) in one sentence."
    )


class PresetOut(BaseModel):
    name: str
    description: str
    recipe: JobRecipe = Field(description='The recipe it expands to ("auto": none of its own).')


class PresetList(BaseModel):
    items: list[PresetOut]
