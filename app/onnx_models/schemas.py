"""Request and response shapes of the models API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


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
