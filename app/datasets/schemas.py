"""Response shapes of the datasets API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ArrayOut(BaseModel):
    shape: list[int]
    dtype: str


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    sha256: str
    size_bytes: int
    num_samples: int = Field(
        description="Length of axis 0, shared by every per-sample array; 1 when every array "
        "is a `const:` one."
    )
    arrays: dict[str, ArrayOut] = Field(
        description="By name: `<input>` holds one value per sample along axis 0, "
        "`const:<input>` one value used with every sample."
    )
    has_labels: bool = Field(description="True when the file has a `labels` array.")
    created_at: datetime


class DatasetList(BaseModel):
    items: list[DatasetOut]
    next_cursor: str | None
