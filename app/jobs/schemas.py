"""Request and response shapes of the jobs API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.compression.passes.recipes import Recipe


class BenchmarkOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runs: int = Field(default=50, ge=1, le=10_000, description="Timed runs per model.")
    warmup: int = Field(default=5, ge=0, le=1_000, description="Untimed runs before timing.")
    threads: int = Field(default=1, ge=1, le=256, description="ONNX Runtime intra-op threads.")
    provider: Literal["cpu", "cuda", "tensorrt"] = Field(
        default="cpu",
        description="Execution provider; cuda/tensorrt only where the worker has them "
        "(otherwise the job fails with provider_unavailable).",
    )
    graph_optimization_level: Literal["disable", "basic", "extended", "all"] = Field(
        default="all", description="ONNX Runtime graph optimizations applied at session load."
    )
    batch_sizes: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=list,
        max_length=8,
        description="Extra batch sizes to measure throughput at (dynamic batch dim only).",
    )


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(max_length=64)
    preset: str | None = Field(default=None, description="A preset name from GET /v1/presets.")
    recipe: Recipe | None = Field(
        default=None, description="An ordered list of passes; each is validated by its config."
    )
    calibration_dataset_id: str | None = None
    eval_dataset_id: str | None = None
    input_shapes: dict[str, list[int]] | None = Field(
        default=None, description="Fixed shapes for inputs with symbolic dims, by input name."
    )
    benchmark: BenchmarkOptions = Field(default_factory=BenchmarkOptions)

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
    kind: str = Field(description="compress: passes then benchmark; benchmark: measure only.")
    model_id: str | None
    baseline_model_id: str | None = None
    calibration_dataset_id: str | None = None
    eval_dataset_id: str | None = None
    status: str
    attempts: int = Field(description="Runs so far; more than 1 after a worker was lost.")
    progress: float
    stage: str | None
    preset: str | None
    recipe: dict[str, Any]
    input_shapes: dict[str, Any] | None
    benchmark: dict[str, Any] = Field(validation_alias="benchmark_options")
    error: JobError | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    output_model_id: str | None
    metrics: dict[str, Any] | None
    warnings: list[str] = Field(default_factory=list)


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class JobReport(BaseModel):
    job_id: str
    status: str
    passes: list[dict[str, Any]] = Field(description="What each pass did, in recipe order.")
    weights: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per weight tensor: |w - dequant(w)| mean and max, worst first.",
    )
    sensitivity: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per quantized node: output error against the original, worst first.",
    )
    warnings: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] | None


class PresetOut(BaseModel):
    name: str
    description: str
    recipe: dict[str, Any]


class PresetList(BaseModel):
    items: list[PresetOut]
