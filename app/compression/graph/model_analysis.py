"""Pre-flight analysis of a model: its shape as the passes see it, and what each would touch.

Pure: onnx and numpy only, never onnxruntime, so the upload check (a sandbox child) and the
worker can both run it. The automatic search (app/compression/search) plans from it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, ModelProto

from app.compression.graph.analysis import (
    count_ops,
    external_data_files,
    graph_inputs,
    load_proto,
    param_count,
    weight_bytes,
)
from app.compression.graph.analysis_report import (
    LARGE_MATMUL_PARAMS,
    CalibrationMemory,
    ModelAnalysis,
    ModelFlags,
    PassCoverage,
    SubgraphInfo,
    SymbolicDim,
)
from app.compression.graph.model_info import TensorSpec
from app.compression.graph.pass_coverage import pass_coverage
from app.compression.graph.weight_uses import (
    RECURRENT_OPS,
    NodeUse,
    is_embedding,
    node_uses,
    params_by_op,
    weight_only_fits,
)

CALIBRATION_SAMPLES = 64  # quantize_static's default num_samples
_CONV_OPS = ("Conv", "ConvTranspose")
_MATMUL_OPS = ("MatMul", "Gemm", "Attention", "MultiHeadAttention", "Einsum")


def _bodies(graph: GraphProto, depth: int) -> Iterator[tuple[onnx.NodeProto, str, GraphProto, int]]:
    for node in graph.node:
        for attr in node.attribute:
            subs = [attr.g] if attr.type == AttributeProto.GRAPH else []
            subs += list(attr.graphs) if attr.type == AttributeProto.GRAPHS else []
            for sub in subs:
                yield node, attr.name, sub, depth + 1
                yield from _bodies(sub, depth + 1)


def _subgraphs(model: ModelProto) -> list[SubgraphInfo]:
    found = []
    for node, attribute, body, depth in _bodies(model.graph, 0):
        counts: Counter[str] = Counter(n.op_type for n in body.node)
        for _, _, nested, _ in _bodies(body, depth):
            counts.update(n.op_type for n in nested.node)
        found.append(
            SubgraphInfo(
                node=node.name or node.op_type,
                op_type=node.op_type,
                attribute=attribute,
                depth=depth,
                op_counts=dict(sorted(counts.items())),
            )
        )
    return found


def _symbolic_dims(inputs: list[TensorSpec]) -> list[SymbolicDim]:
    return [
        SymbolicDim(input=spec.name, axis=axis, name=dim)
        for spec in inputs
        for axis, dim in enumerate(spec.shape)
        if isinstance(dim, str)
    ]


def _activation_bytes(model: ModelProto) -> tuple[int, bool]:
    """Bytes of the main graph's tensors for one sample (open input dims at 1), and whether
    shape inference sized every one of them."""
    probe = ModelProto()
    probe.CopyFrom(model)
    for value in probe.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if not (dim.HasField("dim_value") and dim.dim_value > 0):
                dim.Clear()
                dim.dim_value = 1
    inferred = onnx.shape_inference.infer_shapes(probe, check_type=False, strict_mode=False)
    total, complete = 0, True
    values = [*inferred.graph.value_info, *inferred.graph.output]
    for value in values:
        tensor_type = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor_type.shape.dim]
        if not tensor_type.HasField("shape") or any(d <= 0 for d in dims):
            complete = False
            continue
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
        except (KeyError, TypeError, ValueError):
            complete = False
            continue
        total += int(np.prod(dims, dtype=np.int64)) * itemsize.itemsize
    produced = sum(len(n.output) for n in model.graph.node)
    return total, complete and len(values) >= produced


def calibration_memory(model: ModelProto, samples: int = CALIBRATION_SAMPLES) -> CalibrationMemory:
    """Estimated peak memory of static calibration on `samples` samples."""
    activations, complete = _activation_bytes(model)
    weights = weight_bytes(model)
    return CalibrationMemory(
        samples=samples,
        activation_bytes_per_sample=activations,
        weight_bytes=weights,
        estimate_bytes=samples * activations + weights,
        complete=complete,
    )


def _flags(uses: list[NodeUse], by_op: dict[str, int], ops: dict[str, int]) -> ModelFlags:
    conv = sum(by_op.get(op, 0) for op in _CONV_OPS)
    matmul = sum(by_op.get(op, 0) for op in _MATMUL_OPS)
    recurrent = sum(by_op.get(op, 0) for op in RECURRENT_OPS)
    compute = conv + matmul + recurrent
    activation_matmuls = sum(1 for u in uses if u.op_type == "MatMul" and 1 not in u.weights)
    weight_only = sum(
        int(np.prod(u.weights[1].dims, dtype=np.int64)) for u in uses if weight_only_fits(u)
    )
    return ModelFlags(
        conv_heavy=conv > 0 and 2 * conv >= compute,
        matmul_heavy=matmul > 0 and 2 * matmul >= compute,
        has_recurrent=any(ops.get(op) for op in RECURRENT_OPS),
        has_attention=bool(ops.get("Attention") or ops.get("MultiHeadAttention"))
        or (bool(ops.get("Softmax")) and activation_matmuls >= 2),
        has_embeddings=any(is_embedding(u) for u in uses),
        large_matmul_params=weight_only >= LARGE_MATMUL_PARAMS,
    )


def analyze_model(path: Path) -> ModelAnalysis:
    """Analyze the .onnx at `path` (its external data is never read)."""
    model = load_proto(Path(path))
    uses = node_uses(model)
    by_op = params_by_op(model, uses)
    ops = count_ops(model)
    inputs = graph_inputs(model)
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    try:
        memory: CalibrationMemory | None = calibration_memory(model)
    except Exception:  # shape inference gives up on some exports (and on protos over 2 GB)
        memory = None
    return ModelAnalysis(
        ir_version=model.ir_version,
        opset=max(opsets, default=0),
        producer=model.producer_name or None,
        op_counts=ops,
        param_count=param_count(model),
        weight_bytes=weight_bytes(model),
        params_by_op=by_op,
        inputs=inputs,
        symbolic_dims=_symbolic_dims(inputs),
        subgraphs=_subgraphs(model),
        has_external_data=bool(external_data_files(model, Path(path).parent)),
        passes=pass_coverage(uses),
        flags=_flags(uses, by_op, ops),
        calibration_memory=memory,
    )


__all__ = ["CalibrationMemory", "ModelAnalysis", "PassCoverage", "analyze_model"]
