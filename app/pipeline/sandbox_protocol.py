"""What the worker (or the API) and its sandbox child say to each other: one request file in, one
result out.

Both halves import these models: the parent writes a request with `model_dump_json` and reads the
result with `model_validate_json`, the child the other way round. Nothing here imports onnx or
onnxruntime: the child reads its request only after setting its limits, but this module loads
before that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol, TypeVar

from pydantic import BaseModel, Field, SerializeAsAny, TypeAdapter, field_validator

from app.compression.graph.analysis_report import ModelAnalysis
from app.compression.graph.model_info import ModelInfo
from app.compression.measure.metrics import (
    Metrics,
    ModelMetrics,
    NodeSensitivityRow,
    WeightErrorRow,
)
from app.compression.measure.options import MeasureOptions
from app.compression.passes.base import PASS_REGISTRY, PassConfig, PassContext, PassReport


class PassResult(BaseModel):
    """The pass ran and wrote its output."""

    kind: Literal["pass"] = "pass"
    report: PassReport = Field(description="What the pass did.")


class BenchmarkResult(BaseModel):
    """The metrics, and the per-tensor and per-node rows that go to the job's report."""

    kind: Literal["benchmark"] = "benchmark"
    metrics: Metrics | ModelMetrics = Field(
        description="The pair's metrics, or one model's block without a baseline."
    )
    weights: list[WeightErrorRow] = Field(
        default_factory=list, description="Per weight tensor error (pairs only)."
    )
    sensitivity: list[NodeSensitivityRow] = Field(
        default_factory=list, description="Per quantized node output error (pairs only)."
    )


class ValidateModelResult(BaseModel):
    """The model is valid; what the API records about it."""

    kind: Literal["validate_model"] = "validate_model"
    info: ModelInfo = Field(description="Inputs, outputs, opset, op counts, parameter count.")
    analysis: ModelAnalysis | None = Field(
        default=None,
        description="The pre-flight analysis; None when it failed on a model that is valid.",
    )


class PassRequest(BaseModel):
    """Run one pass on one model file."""

    kind: Literal["pass"] = "pass"
    answer_type: ClassVar[type[PassResult]] = PassResult
    # SerializeAsAny: the pass's own fields go along, not just PassConfig's `type`.
    config: SerializeAsAny[PassConfig] = Field(description="The pass's config, fully defaulted.")
    input: Path = Field(description="The model file the pass reads.")
    output: Path = Field(description="Where the pass writes its model.")
    context: PassContext = Field(description="Calibration data, shapes and seed of the job.")
    check_samples: int = Field(
        default=0, ge=0, description="Samples to compare output with input on; 0: no check."
    )

    @field_validator("config", mode="before")
    @classmethod
    def _as_its_pass_config(cls, value: Any) -> Any:
        """Read back from JSON, a config becomes its registered pass's config class."""
        if not isinstance(value, dict):
            return value
        registered = PASS_REGISTRY.get(str(value.get("type")))
        if registered is None:
            raise ValueError(f"no pass of type {value.get('type')!r} is registered here")
        return registered.config_cls.model_validate(value)


class BenchmarkRequest(BaseModel):
    """Measure one model, against a baseline when there is one."""

    kind: Literal["benchmark"] = "benchmark"
    answer_type: ClassVar[type[BenchmarkResult]] = BenchmarkResult
    model: Path = Field(description="The model measured (the compressed one of a pair).")
    baseline: Path | None = Field(
        default=None, description="The original to compare with; None for a single model."
    )
    options: MeasureOptions = Field(description="How to measure, settings already merged in.")


class ValidateModelRequest(BaseModel):
    """Check an uploaded model and describe it: the API's upload check, parsed outside the API."""

    kind: Literal["validate_model"] = "validate_model"
    answer_type: ClassVar[type[ValidateModelResult]] = ValidateModelResult
    model: Path = Field(description="The .onnx file; its external data files lie beside it.")


class SandboxFailure(BaseModel):
    """The work failed in a way the child could tell: the job fails with this code."""

    kind: Literal["error"] = "error"
    code: str = Field(description="A stable machine word, such as provider_unavailable.")
    message: str = Field(description="What went wrong, for the user.")
    traceback: str | None = Field(
        default=None, description="Where an internal_error came from, for operators only."
    )


ResultT_co = TypeVar("ResultT_co", covariant=True)


class ChildRequest(Protocol[ResultT_co]):
    """Any request above, typed by the result the child answers it with (its `answer_type`)."""

    @property
    def kind(self) -> str: ...
    @property
    def answer_type(self) -> type[ResultT_co]: ...
    def model_dump_json(self) -> str: ...


AnyRequest = PassRequest | BenchmarkRequest | ValidateModelRequest
AnyResult = PassResult | BenchmarkResult | ValidateModelResult | SandboxFailure
SandboxRequest = Annotated[AnyRequest, Field(discriminator="kind")]
SandboxResult = Annotated[AnyResult, Field(discriminator="kind")]
sandbox_request: TypeAdapter[AnyRequest] = TypeAdapter(SandboxRequest)
sandbox_result: TypeAdapter[AnyResult] = TypeAdapter(SandboxResult)
