"""What the pre-flight analysis of a model says, as plain pydantic models: nothing here imports
onnx, so the sandbox protocol can carry a ModelAnalysis from the child that read the file."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.compression.graph.model_info import TensorSpec

# MatMul weights that int4 weight-only can take, from which it is worth a candidate.
LARGE_MATMUL_PARAMS = 1_000_000


class PassCoverage(BaseModel):
    """What one pass with its default settings would change in the model, and what it leaves."""

    pass_type: str = Field(description='The pass, e.g. "quantize_dynamic".')
    touches: dict[str, int] = Field(description="Nodes the pass would change, per op type.")
    leaves: dict[str, int] = Field(
        description="Compute or weight nodes it would leave as they are, per op type."
    )
    summary: str = Field(description='One line, e.g. "quantize_dynamic: 12 MatMul; leaves 3 Conv".')


class SymbolicDim(BaseModel):
    """An input dimension the model leaves open."""

    input: str = Field(description="The graph input.")
    axis: int = Field(description="Its position in the input's shape.")
    name: str = Field(description='The dim_param, or "?" when the model does not name it.')


class SubgraphInfo(BaseModel):
    """A body of an If/Loop/Scan node."""

    node: str = Field(description="Name of the node that holds the body.")
    op_type: str = Field(description="If, Loop, Scan, or another op with a graph attribute.")
    attribute: str = Field(description='Which body, e.g. "then_branch" or "body".')
    depth: int = Field(description="1 for a body of a main-graph node, 2 for one nested in it...")
    op_counts: dict[str, int] = Field(description="Nodes per op type in it (nested bodies too).")


class ModelFlags(BaseModel):
    """Traits the automatic search chooses its candidates by."""

    conv_heavy: bool = Field(description="Conv/ConvTranspose hold most of the compute weights.")
    matmul_heavy: bool = Field(description="MatMul/Gemm/attention hold most of them.")
    has_recurrent: bool = Field(description="The graph has LSTM, GRU or RNN nodes.")
    has_attention: bool = Field(
        description="Attention ops, or a Softmax between MatMuls on activations."
    )
    has_embeddings: bool = Field(description="Gather nodes read a constant 2-D float table.")
    large_matmul_params: bool = Field(
        description=f"At least {LARGE_MATMUL_PARAMS:,} weights sit in MatMuls that int4 "
        "weight-only can take."
    )


class CalibrationMemory(BaseModel):
    """An estimate, not a measurement, of what static calibration holds in memory at its peak:
    every intermediate tensor of every sample (onnxruntime keeps them all), plus the weights."""

    samples: int = Field(description="Calibration samples the estimate is for.")
    activation_bytes_per_sample: int = Field(
        description="Bytes of the main graph's intermediate tensors for one sample, from shape "
        "inference with every open input dim set to 1."
    )
    weight_bytes: int = Field(description="Bytes of the weights.")
    estimate_bytes: int = Field(description="samples x activations + weights.")
    complete: bool = Field(
        description="False when shape inference left some tensors' sizes unknown: then the "
        "estimate is a lower bound."
    )


class ModelAnalysis(BaseModel):
    """What a model is made of, as the compression passes see it."""

    ir_version: int = Field(description="ONNX IR version of the file.")
    opset: int = Field(description="Opset of the default ONNX domain.")
    producer: str | None = Field(default=None, description="The exporter that wrote the file.")
    op_counts: dict[str, int] = Field(description="Nodes per op type, subgraphs included.")
    param_count: int = Field(description="Weight elements (initializers and Constant tensors).")
    weight_bytes: int = Field(description="Bytes those weights take.")
    params_by_op: dict[str, int] = Field(
        description="Weight elements per op type that consumes them (through Transpose, "
        "Identity, DequantizeLinear and Cast); '(unconsumed)' for weights no node reads."
    )
    inputs: list[TensorSpec] = Field(description="The inputs a caller feeds.")
    symbolic_dims: list[SymbolicDim] = Field(description="Input dims the model leaves open.")
    subgraphs: list[SubgraphInfo] = Field(description="If/Loop/Scan bodies, depth first.")
    has_external_data: bool = Field(description="Weights stored in files beside the .onnx.")
    passes: list[PassCoverage] = Field(
        description="Per pass (default settings): what it would touch and what it leaves."
    )
    flags: ModelFlags
    calibration_memory: CalibrationMemory | None = Field(
        default=None, description="Estimated memory of static calibration; None if unknown."
    )
