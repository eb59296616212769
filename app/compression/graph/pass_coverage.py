"""What each built-in pass, with its default settings, would touch in a model and what it leaves.

A forecast from the protobuf (no onnxruntime): each rule restates the condition its pass in
app/compression/passes/ applies, so "quantize_dynamic: 12 MatMul, 2 LSTM; leaves 30 Conv"
says ahead of a job where a pass can and cannot help.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from onnx import TensorProto

from app.compression.graph.analysis_report import PassCoverage
from app.compression.graph.weight_uses import (
    RECURRENT_OPS,
    NodeUse,
    gemm_as_matmul,
    is_embedding,
    weight_only_fits,
)
from app.compression.passes.configs import QuantizeDynamicConfig

# Ops that hold most of a model's compute or weights: what "leaves" reports when a pass skips them.
COMPUTE_OPS = (
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "Attention",
    "MultiHeadAttention",
    "Einsum",
    *RECURRENT_OPS,
)
# What onnxruntime's QDQ quantizer quantizes that does real work (its data-movement ops such as
# Reshape or Transpose only carry the quantized values along).
_STATIC_OPS = (
    "Conv",
    "ConvTranspose",
    "MatMul",
    "Gemm",
    "AveragePool",
    "MaxPool",
    "Resize",
    "InstanceNormalization",
    "LayerNormalization",
)
# onnxruntime's float16 converter keeps these in float32 by default (ML ops, ranges, extremes).
_FP16_BLOCKED = ("NonMaxSuppression", "TopK", "RoiAlign", "Range", "CumSum", "Min", "Max")
_DYNAMIC_KERNELS = ("MatMul", "Gemm", "Attention", "LSTM", "Conv", "Gather")


def _leftover(use: NodeUse) -> bool:
    return use.op_type in COMPUTE_OPS or is_embedding(use)


def _coverage(
    pass_type: str, uses: list[NodeUse], touched: Callable[[NodeUse], bool], note: str = ""
) -> PassCoverage:
    touches: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    for use in uses:
        if touched(use):
            touches[use.op_type] += 1
        elif _leftover(use):
            leaves[use.op_type] += 1
    return PassCoverage(
        pass_type=pass_type,
        touches=dict(touches.most_common()),
        leaves=dict(leaves.most_common()),
        summary=_summary(pass_type, touches, leaves) + note,
    )


def _listing(counts: Counter[str], most: int = 6) -> str:
    shown = [f"{count} {op}" for op, count in counts.most_common(most)]
    rest = sum(counts.values()) - sum(count for _, count in counts.most_common(most))
    return ", ".join(shown) + (f" and {rest} more" if rest else "")


def _summary(pass_type: str, touches: Counter[str], leaves: Counter[str]) -> str:
    head = f"{pass_type}: {_listing(touches) if touches else 'nothing'}"
    return head + (f"; leaves {_listing(leaves)}" if leaves else "")


def _float_weight(use: NodeUse, index: int) -> bool:
    tensor = use.weight(index)
    return tensor is not None and tensor.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16)


def _dynamic(use: NodeUse, op_types: set[str]) -> bool:
    """quantize_dynamic: MatMul/LSTM with a constant weight, Gemm it rewrites, Attention, tables."""
    if use.op_type not in op_types or use.op_type not in _DYNAMIC_KERNELS:
        return False
    if use.op_type == "Gemm":
        return "MatMul" in op_types and gemm_as_matmul(use)
    if use.op_type == "Gather":
        return is_embedding(use)
    if use.op_type == "Attention":
        return True
    return _float_weight(use, 1)


def _static(use: NodeUse) -> bool:
    """quantize_static (QDQ): main-graph compute ops, plus 8-bit weights for LSTM/GRU and for
    weight nodes inside subgraphs (which calibration cannot reach)."""
    if use.depth == 0:
        return (
            use.op_type in _STATIC_OPS
            or is_embedding(use)
            or (use.op_type in RECURRENT_OPS and _float_weight(use, 1))
        )
    return use.op_type in COMPUTE_OPS and _float_weight(use, 1)


def _fp16(use: NodeUse) -> bool:
    """convert_fp16: every node reading a float32 weight, except the ops ORT keeps in float32."""
    return use.op_type not in _FP16_BLOCKED and any(
        t.data_type == TensorProto.FLOAT for t in use.weights.values()
    )


def _prune(use: NodeUse) -> bool:
    """prune_magnitude / prune_channels: Conv, Gemm and MatMul with a constant float weight."""
    return use.op_type in ("Conv", "Gemm", "MatMul") and _float_weight(use, 1)


def pass_coverage(uses: list[NodeUse]) -> list[PassCoverage]:
    """The forecast for each pass an automatic search may pick from."""
    dynamic = QuantizeDynamicConfig()
    default_ops = set(dynamic.op_types)
    embeddings = sum(1 for u in uses if is_embedding(u))
    gru = sum(1 for u in uses if u.op_type == "GRU")
    dynamic_note = (
        f" (quantize_embeddings would also take {embeddings} Gather)" if embeddings else ""
    )
    if gru:
        dynamic_note += " (onnxruntime has no dynamic GRU)"
    return [
        _coverage("quantize_dynamic", uses, lambda u: _dynamic(u, default_ops), dynamic_note),
        _coverage("quantize_static", uses, _static),
        _coverage("quantize_weight_only", uses, weight_only_fits),
        _coverage("convert_fp16", uses, _fp16),
        _coverage("prune_magnitude", uses, _prune),
        _coverage("prune_channels", uses, _prune),
    ]


def dynamic_touches(uses: list[NodeUse], op_types: set[str]) -> Counter[str]:
    """Nodes quantize_dynamic would take with these op types (Gather: embedding tables)."""
    return Counter(u.op_type for u in uses if _dynamic(u, op_types))
