"""How a benchmark measures: the knobs a job may set, and everything one measurement needs.

The defaults here are the only ones: the API, the settings and the worker all read them from
these models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


# One constant input in JSON: a number (true/false for bool inputs) or nested lists of them,
# converted to the model input's own dtype.
def _no_text(value: Any) -> Any:
    # Refused before the union could read "16000" as a number: the dtype is the model's.
    if not isinstance(value, bool | int | float | list):
        raise ValueError("give a number, true/false, or nested lists of them")
    return value


InputValue = Annotated[bool | int | float | list[Any], BeforeValidator(_no_text)]
INPUT_VALUES_DESCRIPTION = (
    "Constant values of inputs, by input name, fed with every sample of calibration, synthetic "
    'data and benchmark feeds: small control inputs such as {"sr": 16000} or an initial RNN '
    "state as nested lists; the dtype is the model input's. Wins over a dataset's array."
)


class BenchmarkOptions(BaseModel):
    """What a job (or a benchmark request) may choose about how its models are timed."""

    model_config = ConfigDict(extra="forbid")

    runs: int = Field(default=50, ge=1, le=10_000, description="Timed runs per model.")
    warmup: int = Field(default=5, ge=0, le=1_000, description="Untimed runs before timing.")
    threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="ONNX Runtime intra-op threads, capped at the worker's CPUs.",
    )
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


class MeasureOptions(BenchmarkOptions):
    """One measurement: the job's options plus its shapes, data, budget and sampling."""

    input_shapes: dict[str, list[int]] | None = Field(
        default=None, description="Fixed shapes for inputs with symbolic dims, by input name."
    )
    input_values: dict[str, InputValue] | None = Field(
        default=None, description=INPUT_VALUES_DESCRIPTION
    )
    time_budget_s: float = Field(
        ge=0,
        description="Upper bound on warm-up, timed runs, every batch size, the memory probes and "
        "the evaluation together (at least one timed run and one evaluated sample; loading the "
        "models comes on top).",
    )
    default_dim: int = Field(default=1, description="Value of a symbolic dim left open.")
    seed: int = Field(default=0, description="Seed of the synthetic inputs.")
    fidelity_samples: int = Field(
        default=8, ge=0, description="Synthetic inputs compared when there is no dataset."
    )
    eval_dataset_path: Path | None = Field(
        default=None, description="An .npz of evaluation inputs (and labels for accuracy)."
    )
    measure_memory: bool = Field(
        default=True, description="Measure each model's peak memory in a child process."
    )
    blank_index: int | None = Field(
        default=None,
        ge=0,
        description="CTC blank class of sequence labels (the job objective's blank_index).",
    )
