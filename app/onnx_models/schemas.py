"""Request and response shapes of the models API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.compression.graph.analysis_report import ModelAnalysis


class TensorSpecOut(BaseModel):
    name: str
    dtype: str
    shape: list[int | str] = Field(description="Dims; a string is a symbolic dim such as 'batch'.")


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    sha256: str
    size_bytes: int
    format: str
    packaging: str = Field(
        description="onnx: a single file; zip: the model with its external-data files."
    )
    ir_version: int
    opset: int
    producer: str | None
    inputs: list[TensorSpecOut]
    outputs: list[TensorSpecOut]
    op_counts: dict[str, int]
    param_count: int
    transport_size_bytes: int | None = Field(
        description="Size once zstd-compressed: what download?encoding=zstd sends."
    )
    parent_id: str | None
    job_id: str | None
    created_at: datetime


class ModelList(BaseModel):
    items: list[ModelOut]
    next_cursor: str | None


class WorkerHostOut(BaseModel):
    """A host the workers measured on lately, from its benchmark fingerprint."""

    cpu: str = Field(description="CPU model name.")
    cores: int = Field(description="Intra-op threads its sessions ran with.")
    features: list[str] = Field(
        description="CPU features that decide int8/fp16 speed (avx2, avx512_vnni, amx_int8, "
        "avx512_fp16, ...); empty for fingerprints recorded before features were."
    )
    seen_at: datetime = Field(description="When a job last finished measuring there.")


class ModelAnalysisOut(BaseModel):
    """The model's pre-flight analysis, the workers it would run on, and what to make of both."""

    model_id: str
    analysis: ModelAnalysis
    workers: list[WorkerHostOut] = Field(
        description="Distinct hosts of the latest succeeded jobs' measurements, newest first."
    )
    notes: list[str] = Field(description="What the analysis means for compressing this model.")
