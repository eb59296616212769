"""What the API answers, as typed models: models, datasets, jobs, reports and upload tickets.

Every model ignores fields it does not know, so a newer server that adds fields keeps working
with this SDK; the extra fields stay readable (`job.model_extra`). Every enum takes values it
does not list (see `OpenEnum`), for the same reason.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from modelpress_sdk.base import ApiModel, OpenEnum
from modelpress_sdk.errors import ApiError
from modelpress_sdk.metrics import Metrics, ModelMetrics

T = TypeVar("T", bound=BaseModel)


class JobStatus(OpenEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


class JobKind(OpenEnum):
    COMPRESS = "compress"  # passes, then a benchmark of the output against the input
    BENCHMARK = "benchmark"  # measure one model, alone or against a baseline
    AUTO = "auto"  # a search: runs candidate jobs and recommends one of their outputs
    CANDIDATE = "candidate"  # one job of such a search (parent_job_id names it)


class Verdict(OpenEnum):
    VERIFIED = "verified"  # within the accuracy budget on real data
    REJECTED = "rejected"  # over budget: kept for inspection, never recommended
    UNVERIFIED = "unverified"  # synthetic inputs only: real data is needed for a verdict


class Recipe(ApiModel):
    """The passes a job runs, in order; each is a dict with its `type` and its settings."""

    passes: list[dict[str, Any]]


class BenchmarkOptions(ApiModel):
    """How a job's models are timed (the server's defaults where the job did not say)."""

    runs: int = 50
    warmup: int = 5
    threads: int = 1
    provider: str = "cpu"  # cpu, cuda or tensorrt
    graph_optimization_level: str = "all"  # disable, basic, extended or all
    batch_sizes: list[int] = Field(default_factory=list)


class TensorSpec(ApiModel):
    name: str
    dtype: str
    shape: list[int | str]  # a string is a symbolic dim such as "batch"


class Model(ApiModel):
    """A stored ONNX model (an upload, or a job's output)."""

    id: str
    name: str
    sha256: str
    size_bytes: int
    format: str
    packaging: str  # "onnx": one file; "zip": the model with its external-data files
    ir_version: int
    opset: int
    producer: str | None = None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    op_counts: dict[str, int] = Field(default_factory=dict)
    param_count: int
    transport_size_bytes: int | None = None
    parent_id: str | None = None
    job_id: str | None = None
    created_at: datetime


class ArrayInfo(ApiModel):
    shape: list[int]
    dtype: str


class Dataset(ApiModel):
    """Calibration or evaluation data: an uploaded .npz of named arrays."""

    id: str
    name: str
    sha256: str
    size_bytes: int
    num_samples: int
    arrays: dict[str, ArrayInfo]
    has_labels: bool
    created_at: datetime


class JobError(ApiModel):
    code: str
    message: str


class Candidate(ApiModel):
    """One candidate of an auto job."""

    job_id: str
    label: str
    status: JobStatus
    recipe: Recipe
    compression_ratio: float | None = None
    speedup_ratio: float | None = None
    speedup_noise: float | None = None
    metric: str | None = None
    delta: float | None = None
    verdict: Verdict | None = None
    pareto: bool = False
    recommended: bool = False
    error: JobError | None = None


class JobFields(ApiModel):
    """A job as the API describes it. `Job` adds the methods that act on it."""

    id: str
    kind: JobKind
    status: JobStatus
    parent_job_id: str | None = None
    model_id: str | None = None
    baseline_model_id: str | None = None
    calibration_dataset_id: str | None = None
    eval_dataset_id: str | None = None
    attempts: int = 0
    progress: float = 0.0
    stage: str | None = None
    preset: str | None = None
    recipe: Recipe = Field(default_factory=lambda: Recipe(passes=[]))
    input_shapes: dict[str, Any] | None = None
    input_values: dict[str, Any] | None = None
    benchmark: BenchmarkOptions = Field(default_factory=BenchmarkOptions)
    error: JobError | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_model_id: str | None = None
    # Metrics compares two models (compress jobs, benchmarks against a baseline); a benchmark of
    # one model has that model's block alone. None until the job succeeds. See `comparison`.
    metrics: Metrics | ModelMetrics | None = None
    warnings: list[str] = Field(default_factory=list)
    objective: dict[str, Any] | None = None
    verdict: Verdict | None = None  # None until done
    verdict_detail: dict[str, Any] | None = None
    recommendation_reason: str | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    explanation: str | None = None

    @property
    def done(self) -> bool:
        """Whether the job has ended (succeeded, failed or canceled)."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == JobStatus.SUCCEEDED

    @property
    def comparison(self) -> Metrics | None:
        """The metrics comparing the output with the input (or baseline); None without them."""
        return self.metrics if isinstance(self.metrics, Metrics) else None


class JobReport(ApiModel):
    """What each pass of a job did, and its per-weight and per-node errors."""

    job_id: str
    status: JobStatus
    passes: list[dict[str, Any]]
    weights: list[dict[str, Any]] = Field(default_factory=list)
    sensitivity: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    metrics: Metrics | ModelMetrics | None = None
    candidates: list[Candidate] = Field(default_factory=list)
    explanation: str | None = None


class Preset(ApiModel):
    name: str
    description: str
    recipe: Recipe


class UploadPart(ApiModel):
    part_number: int
    url: str
    size_bytes: int


class UploadTicket(ApiModel):
    """Where to PUT a model's bytes before registering it (POST /v1/uploads)."""

    upload_id: str
    method: str = "PUT"
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    parts: list[UploadPart] = Field(default_factory=list)
    expires_at: datetime | None = None
    max_bytes: int | None = None


def parse(kind: type[T], data: Any) -> T:
    """An answer as its type; one that does not fit is the server's fault, said as an ApiError."""
    try:
        return kind.model_validate(data)
    except ValidationError as exc:
        raise ApiError(200, "bad_response", f"unexpected {kind.__name__}: {exc}") from None
