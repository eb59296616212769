"""What inspecting a model yields, as plain pydantic models: nothing here imports onnx, so the
sandbox protocol can carry a ModelInfo from the child that parsed the file to the API."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

SYMBOLIC = "?"  # a dim the model leaves open without naming it


class TensorSpec(BaseModel):
    """A graph input or output: name, numpy dtype name and shape (str for symbolic dims)."""

    name: str
    dtype: str = Field(description='numpy dtype name, e.g. "float32"; "string" for text.')
    shape: list[int | str] = Field(
        description='Dims; a dim_param is its name, unknown (unnamed, or stored as <= 0) is "?".'
    )
    rank_known: bool = Field(
        default=True, description="False when the model declares no shape at all (shape is [])."
    )

    @field_validator("shape")
    @classmethod
    def _open_dims_are_symbolic(cls, shape: list[int | str]) -> list[int | str]:
        """A dim <= 0 (exporters write -1 for a batch axis) is open, never a size."""
        # Also reads specs recorded before this rule as the model really is.
        return [SYMBOLIC if isinstance(d, int) and d <= 0 else d for d in shape]


class ModelInfo(BaseModel):
    """What inspect_model learned about a model without reading its external data."""

    ir_version: int
    opset: int = Field(description="Opset of the default ONNX domain.")
    producer: str | None
    inputs: list[TensorSpec] = Field(description="Real inputs; initializer-backed ones left out.")
    outputs: list[TensorSpec]
    op_counts: dict[str, int] = Field(description="Nodes per op type, subgraphs included.")
    param_count: int = Field(description="Elements in initializers and Constant tensors.")
    has_external_data: bool
