"""The settings of every built-in pass: what a recipe is validated against, without onnx.

The passes themselves live in one module each (named after their `type`) and import their
config from here: the API validates recipes without loading any of them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from app.compression.passes.base import PassConfig, register_config

OpType = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[A-Za-z_][\w.]*$")
]
NodeName = Annotated[str, StringConstraints(min_length=1)]
WeightOp = Literal["MatMul", "Gemm", "Conv", "ConvTranspose", "Gather"]


@register_config
class QuantizeDynamicConfig(PassConfig):
    """Settings of onnxruntime's dynamic (weights ahead of time, activations at run time) pass."""

    type: Literal["quantize_dynamic"] = Field(
        default="quantize_dynamic", description="Pass discriminator."
    )
    weight_type: Literal["int8", "uint8"] = Field(
        default="int8",
        description="Integer type of the quantized weights; int8 suits most x86/ARM CPUs.",
    )
    per_channel: bool = Field(
        default=False,
        description="One scale per output channel instead of per tensor (MatMul, Conv, LSTM; "
        "embedding tables keep one scale): more accurate, slightly larger.",
    )
    reduce_range: bool = Field(
        default=False,
        description="Quantize weights to 7 bits; can help accuracy on CPUs without VNNI.",
    )
    op_types: list[OpType] = Field(
        default=["MatMul", "Gemm", "Attention", "LSTM"],
        min_length=1,
        description="Op types to quantize. Only MatMul/Gemm with a constant weight input, Conv, "
        "Attention, LSTM (DynamicQuantizeLSTM), Gather and EmbedLayerNormalization can be "
        "quantized dynamically; onnxruntime has no dynamic GRU, so GRU stays float. Conv is "
        "left out by default: ConvInteger is often slower than float Conv on CPUs.",
    )
    quantize_embeddings: bool = Field(
        default=False,
        description="Also quantize embedding tables (Gather on a constant table) to 8 bits, one "
        "scale per table (ORT has no per-channel Gather): much smaller text encoders.",
    )
    nodes_to_exclude: list[NodeName] = Field(
        default=[], description="Names of nodes to leave in float (e.g. a sensitive last layer)."
    )

    @field_validator("op_types")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    def quantized_op_types(self) -> list[str]:
        """op_types, plus Gather when quantize_embeddings asks for it."""
        extra = ["Gather"] if self.quantize_embeddings and "Gather" not in self.op_types else []
        return [*self.op_types, *extra]


@register_config
class ConvertFp16Config(PassConfig):
    """Settings of the float16 conversion."""

    type: Literal["convert_fp16"] = Field(default="convert_fp16", description="Pass discriminator.")
    keep_io_types: bool = Field(
        default=True,
        description="Keep float32 graph inputs/outputs (Cast nodes at the edges), so callers "
        "need no change.",
    )
    op_block_list: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None,
        description="Op types left in float32; None means onnxruntime's default list "
        "(ML ops, TopK, NonMaxSuppression, Range, CumSum, Min, Max, ...). Nodes whose values "
        "overflow float16 on sample inputs are kept in float32 on top of this list.",
    )


@register_config
class PruneMagnitudeConfig(PassConfig):
    """Settings of magnitude pruning."""

    type: Literal["prune_magnitude"] = Field(
        default="prune_magnitude", description="Pass discriminator."
    )
    sparsity: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="Share of the selected weights set to zero (biases are never pruned).",
    )
    scope: Literal["global", "per_layer"] = Field(
        default="per_layer",
        description="per_layer: every tensor reaches the sparsity; global: one magnitude "
        "threshold over all selected tensors, so layers with many small weights lose more.",
    )
    op_types: list[WeightOp] = Field(
        default=["MatMul", "Gemm", "Conv"],
        min_length=1,
        description="Ops whose weight initializer is pruned (Gather: its embedding table).",
    )

    @field_validator("op_types")
    @classmethod
    def _dedupe(cls, value: list[WeightOp]) -> list[WeightOp]:
        return list(dict.fromkeys(value))


@register_config
class PruneChannelsConfig(PassConfig):
    """Settings of structured (channel) pruning."""

    type: Literal["prune_channels"] = Field(
        default="prune_channels", description="Pass discriminator."
    )
    ratio: float = Field(
        default=0.3,
        gt=0.0,
        lt=1.0,
        description="Share of each prunable layer's output channels to remove (rounded down).",
    )
    criterion: Literal["l1", "l2", "activation"] = Field(
        default="l1",
        description="Channel importance: L1 or L2 norm of the layer's weights, or mean "
        "|activation| on calibration data (data-aware; synthetic inputs when no dataset is given).",
    )
    op_types: list[Literal["Conv", "Gemm", "MatMul"]] = Field(
        default=["Conv", "Gemm", "MatMul"],
        min_length=1,
        description="Layers whose output channels may be removed (their consumers shrink too).",
    )
    num_samples: int = Field(
        default=16, ge=1, le=1024, description="Calibration samples for criterion=activation."
    )


@register_config
class FactorizeLowRankConfig(PassConfig):
    """Settings of SVD factorization; give `energy` or `rank_ratio`, not both."""

    type: Literal["factorize_low_rank"] = Field(
        default="factorize_low_rank", description="Pass discriminator."
    )
    energy: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="Keep the fewest singular values holding this share of the squared "
        "singular values (Frobenius energy) of each weight; 0.9 when neither option is given.",
    )
    rank_ratio: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Instead of energy: keep this share of the full rank min(K, N).",
    )
    min_params: int = Field(
        default=4096, ge=1, description="Leave weights with fewer elements than this alone."
    )

    @model_validator(mode="after")
    def _one_criterion(self) -> FactorizeLowRankConfig:
        if self.energy is not None and self.rank_ratio is not None:
            raise ValueError("give either energy or rank_ratio, not both")
        if self.energy is None and self.rank_ratio is None:
            self.energy = 0.9
        return self


@register_config
class ClusterWeightsConfig(PassConfig):
    """Settings of k-means weight sharing."""

    type: Literal["cluster_weights"] = Field(
        default="cluster_weights", description="Pass discriminator."
    )
    clusters: int = Field(
        default=16,
        ge=2,
        le=256,
        description="Distinct values per weight tensor (one uint8 index per weight).",
    )
    op_types: list[WeightOp] = Field(
        default=["MatMul", "Gemm", "Conv"],
        min_length=1,
        description="Ops whose weight initializer is clustered (Gather: its embedding table).",
    )
    min_params: int = Field(
        default=1024,
        ge=1,
        description="Leave tensors with fewer elements alone: the codebook would not pay off.",
    )

    @field_validator("op_types")
    @classmethod
    def _dedupe(cls, value: list[WeightOp]) -> list[WeightOp]:
        return list(dict.fromkeys(value))


@register_config
class OptimizeGraphConfig(PassConfig):
    """Settings of the offline graph optimization."""

    type: Literal["optimize_graph"] = Field(
        default="optimize_graph", description="Pass discriminator."
    )
    level: Literal["basic", "extended"] = Field(
        default="extended",
        description="basic: constant folding, redundant-node removal and standard-op fusions "
        "(Conv+BatchNorm, MatMul+Add -> Gemm); the output stays plain ONNX. extended: also "
        "fuses into onnxruntime contrib ops (LayerNorm, GELU, attention, FusedConv), which only "
        "onnxruntime runs. Layout (NCHWc) optimizations are never saved: they are tied to the "
        "CPU that made them.",
    )


@register_config
class QuantizeStaticConfig(PassConfig):
    """Settings of onnxruntime's static pass: activation ranges come from calibration data."""

    type: Literal["quantize_static"] = Field(
        default="quantize_static", description="Pass discriminator."
    )
    format: Literal["qdq", "qoperator"] = Field(
        default="qdq",
        description="qdq inserts QuantizeLinear/DequantizeLinear pairs (portable, ORT's "
        "recommendation since 1.11); qoperator writes QLinearConv/QLinearMatMul-style ops.",
    )
    per_channel: bool = Field(
        default=True,
        description="One weight scale per output channel: more accurate for CNNs. Models below "
        "opset 13 are upgraded for it (QDQ), or quantized per tensor if that fails.",
    )
    activation_type: Literal["int8", "uint8"] = Field(
        default="uint8",
        description="Integer type of activations; uint8 (with int8 weights) is ORT's "
        "recommendation for x86 CPUs, int8 suits ARM and GPUs.",
    )
    weight_type: Literal["int8", "uint8"] = Field(
        default="int8", description="Integer type of weights."
    )
    calibration_method: Literal["minmax", "entropy", "percentile"] = Field(
        default="minmax",
        description="How activation ranges are chosen: observed min/max, the KL-divergence "
        "optimum, or the 99.999th percentile (robust to outliers).",
    )
    num_samples: int = Field(
        default=64, ge=1, le=10000, description="Calibration samples to run (batch of 1 each)."
    )
    op_types: list[OpType] | None = Field(
        default=None, description="Op types to quantize; None means all that ORT supports."
    )
    nodes_to_exclude: list[NodeName] = Field(
        default=[], description="Names of nodes to leave in float (e.g. a sensitive last layer)."
    )

    @field_validator("op_types")
    @classmethod
    def _dedupe(cls, value: list[str] | None) -> list[str] | None:
        return list(dict.fromkeys(value)) if value is not None else None

    @model_validator(mode="after")
    def _supported_pair(self) -> QuantizeStaticConfig:
        if self.activation_type == "int8" and self.weight_type == "uint8":
            raise ValueError("activation_type int8 with weight_type uint8 is not supported by ORT")
        return self


@register_config
class QuantizeWeightOnlyConfig(PassConfig):
    """Settings of onnxruntime's MatMulNBits quantizer (round-to-nearest, per block)."""

    type: Literal["quantize_weight_only"] = Field(
        default="quantize_weight_only", description="Pass discriminator."
    )
    bits: Literal[4, 8] = Field(
        default=4, description="Bits per weight: 4 shrinks MatMul weights ~7x, 8 ~3.9x."
    )
    block_size: Literal[32, 64, 128] = Field(
        default=32,
        description="Weights per scale along K: smaller blocks are more accurate, larger "
        "ones smaller. A MatMul whose K is not a multiple of it is left alone.",
    )
    symmetric: bool = Field(
        default=True, description="No zero points (smaller); asymmetric fits skewed weights."
    )
    accuracy_level: Literal[0, 1, 2, 3, 4] | None = Field(
        default=None,
        description="MatMulNBits compute type of the activations: None/0 unset, 1 fp32, "
        "2 fp16, 3 bf16, 4 int8 (fastest on CPUs with int8 dot products, least accurate).",
    )
