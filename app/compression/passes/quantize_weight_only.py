"""4/8-bit block-wise weight-only quantization of MatMul weights into MatMulNBits."""

from __future__ import annotations

import logging
from typing import Any

from onnx import GraphProto, ModelProto, TensorProto, helper, numpy_helper

from app.compression.errors import PassError
from app.compression.graph.analysis import count_ops, iter_graphs, weight_bytes
from app.compression.graph.prepare import (
    name_unnamed_nodes,
    prepare_model,
    sort_all_graphs,
    subgraph_op_counts,
)
from app.compression.passes.base import ModelPass, PassOutcome, PassWork, register_pass
from app.compression.passes.configs import QuantizeWeightOnlyConfig

_FLOAT_TYPES = (1, 10, 16)  # TensorProto.FLOAT, FLOAT16, BFLOAT16


def _initializers(model: ModelProto) -> dict[str, tuple[TensorProto, GraphProto]]:
    return {t.name: (t, g) for g in iter_graphs(model.graph) for t in g.initializer}


def _rewrite_gemms(model: ModelProto, block_size: int) -> int:
    """Gemm(A, const B, C) with alpha = beta = 1, transA = 0 -> MatMul(A, B') + Add(C)."""
    rewritten = 0
    for graph in iter_graphs(model.graph):
        weights = {t.name: t for t in graph.initializer}
        nodes = []
        for node in graph.node:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            b = weights.get(node.input[1]) if node.op_type == "Gemm" else None
            if (
                b is None
                or len(b.dims) != 2
                or attrs.get("transA", 0)
                or attrs.get("alpha", 1.0) != 1.0
                or attrs.get("beta", 1.0) != 1.0
                # A Gemm the quantizer would skip anyway stays a Gemm.
                or b.dims[1 if attrs.get("transB", 0) else 0] % block_size
            ):
                nodes.append(node)
                continue
            if attrs.get("transB", 0):
                # Gemm stores PyTorch Linear weights as [N, K]; MatMul wants [K, N].
                transposed = numpy_helper.from_array(
                    numpy_helper.to_array(b).T.copy(), f"{b.name}_KxN"
                )
                graph.initializer.append(transposed)
                weights[transposed.name] = transposed
                b = transposed
            out = node.output[0]
            has_bias = len(node.input) > 2 and node.input[2]
            mm_out = f"{out}_matmul" if has_bias else out
            nodes.append(
                helper.make_node("MatMul", [node.input[0], b.name], [mm_out], f"{node.name}_MatMul")
            )
            if has_bias:
                nodes.append(
                    helper.make_node("Add", [mm_out, node.input[2]], [out], f"{node.name}_Add")
                )
            rewritten += 1
        graph.ClearField("node")
        graph.node.extend(nodes)
    return rewritten


def _skip_reason(node: Any, weights: dict[str, Any], block_size: int) -> str | None:
    """Why ORT's quantizer cannot or should not take this MatMul (or Gemm), or None."""
    found = weights.get(node.input[1])
    if found is None:
        return "weight input is not a constant initializer"
    tensor = found[0]
    if tensor.data_type not in _FLOAT_TYPES:
        return "weight is not a float tensor"
    dims = list(tensor.dims)
    if len(dims) < 2 or any(d != 1 for d in dims[:-2]):
        return f"weight shape {dims} is not 2-D"
    transposed = node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute)
    k = dims[-1] if transposed else dims[-2]
    if k % block_size:
        # ORT would zero-pad the last block; a K that small or odd is rarely worth it.
        return f"K={k} is not a multiple of block_size {block_size}"
    if node.op_type == "Gemm":  # what _rewrite_gemms left: transA, alpha or beta set
        return "Gemm with transA or alpha/beta other than 1"
    return None


def _quantizer_class() -> Any:
    """ORT's MatMulNBitsQuantizer, imported without its logging side effects."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        # Imported here, when a pass runs: its module calls logging.basicConfig(level=INFO)
        # on import, and needs onnx-ir, which may be missing.
        from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
    except ImportError as exc:
        raise PassError(
            "missing_dependency",
            f"onnxruntime's MatMulNBits quantizer cannot be imported ({exc}); install onnx-ir",
        ) from exc
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(logging.WARNING)
    return MatMulNBitsQuantizer


def _skipped_nodes(model: ModelProto, block_size: int) -> list[dict[str, str]]:
    """The MatMul/Gemm nodes the quantizer must leave alone, each with the reason."""
    weights = _initializers(model)
    skipped: list[dict[str, str]] = []
    for graph in iter_graphs(model.graph):
        for node in (n for n in graph.node if n.op_type in ("MatMul", "Gemm")):
            reason = _skip_reason(node, weights, block_size)
            if reason is not None:
                skipped.append({"node": node.name, "reason": reason})
    return skipped


def _other_weights(model: ModelProto) -> str:
    """Where the weights of a model without MatMul/Gemm sit, for its nothing_to_quantize."""
    ops = count_ops(model)
    held = [f"{op}x{ops[op]}" for op in ("Conv", "ConvTranspose", "LSTM", "GRU") if ops.get(op)]
    if not held:
        return "no MatMul/Gemm"
    return (
        f"no MatMul/Gemm; its weights sit in {', '.join(held)}, which MatMulNBits cannot hold: "
        "int8-dynamic (LSTM) or int8-static (Conv, GRU weights) apply"
    )


@register_pass
class QuantizeWeightOnlyPass(ModelPass[QuantizeWeightOnlyConfig]):
    """MatMul weights to 4 or 8 bits per block; activations stay float (LLM-style)."""

    loads_as = "quantized"
    keeps_external_data = False

    def transform(
        self, model: ModelProto, config: QuantizeWeightOnlyConfig, work: PassWork
    ) -> tuple[ModelProto, PassOutcome]:
        before = count_ops(model)
        weights_before = weight_bytes(model)
        # Constant-node weights are invisible to the quantizer: it looks for initializers.
        model, prep = prepare_model(model, op_types=("MatMul", "Gemm"))
        gemms = _rewrite_gemms(model, config.block_size)
        name_unnamed_nodes(model)
        skipped = _skipped_nodes(model, config.block_size)
        candidates = sum(
            n.op_type in ("MatMul", "Gemm") for g in iter_graphs(model.graph) for n in g.node
        )
        if candidates == len(skipped):
            why = "; ".join(f"{s['node']}: {s['reason']}" for s in skipped[:5]) or (
                _other_weights(model)
            )
            raise PassError(
                "nothing_to_quantize",
                f"no MatMul with a constant weight fits {config.bits}-bit blocks of "
                f"{config.block_size} ({why})",
            )
        quantizer = _quantizer_class()(
            model,
            bits=config.bits,
            block_size=config.block_size,
            is_symmetric=config.symmetric,
            accuracy_level=config.accuracy_level,
            nodes_to_exclude=[s["node"] for s in skipped],
            op_types_to_quantize=("MatMul",),
        )
        quantizer.process()
        model = quantizer.model.model
        # The quantizer rebuilds If/Loop nodes and appends nodes: restore a sorted graph.
        sort_all_graphs(model)
        after = count_ops(model)
        quantized = after.get("MatMulNBits", 0) - before.get("MatMulNBits", 0)
        weights_after = weight_bytes(model)
        warnings = list(prep.warnings)
        if skipped:
            warnings.append(
                f"{len(skipped)} MatMul/Gemm node(s) left in float (see details.skipped)"
            )
        relevant = {"MatMul", "Gemm", "MatMulNBits"}
        details: dict[str, Any] = {
            "nodes_quantized": quantized,
            "subgraph_nodes_quantized": subgraph_op_counts(model).get("MatMulNBits", 0),
            "skipped": skipped,
            "gemm_rewritten_as_matmul": gemms,
            "bits": config.bits,
            "block_size": config.block_size,
            "symmetric": config.symmetric,
            "accuracy_level": config.accuracy_level,
            "op_counts_before": {k: v for k, v in before.items() if k in relevant},
            "op_counts_after": {k: v for k, v in after.items() if k in relevant},
            "weight_bytes_before": weights_before,
            "weight_bytes_after": weights_after,
            "prepared": prep.notes,
        }
        return model, PassOutcome(
            summary=f"Quantized {quantized} MatMul weight(s) to {config.bits}-bit blocks of "
            f"{config.block_size}; weights {weights_before / 1e6:.2f} MB -> "
            f"{weights_after / 1e6:.2f} MB.",
            details=details,
            warnings=warnings,
        )
