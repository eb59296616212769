"""Request shape of the benchmarks API (the answer is a Job)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BenchmarkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_id: str = Field(max_length=64, description="The model to measure.")
    baseline_model_id: str | None = Field(
        default=None, max_length=64, description="Compare against this model (the 'original')."
    )
    eval_dataset_id: str | None = Field(
        default=None, max_length=64, description="Evaluation inputs (and labels for accuracy)."
    )
    input_shapes: dict[str, list[int]] | None = Field(
        default=None, description="Fixed shapes for inputs with symbolic dims, by input name."
    )
    runs: int = Field(default=50, ge=1, le=10_000, description="Timed runs per model.")
    warmup: int = Field(default=5, ge=0, le=1_000, description="Untimed runs before timing.")
    threads: int = Field(default=1, ge=1, le=256, description="ONNX Runtime intra-op threads.")
