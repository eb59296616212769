"""Multiply-accumulates (MACs) of the heavy ops, from shapes inferred for given input shapes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, NodeProto, TensorProto, helper

from app.compression.graph.analysis import (
    graph_inputs,
    load_proto,
    model_size_bytes,
    tensor_nbytes,
    weight_bytes,
)
from app.compression.graph.inputs import resolve_input_shapes

Shape = list[int]
# op type -> (input holding A / the image, input holding B / the kernel)
_MATMUL_LIKE = {
    "MatMul": (0, 1),
    "MatMulInteger": (0, 1),
    "QLinearMatMul": (0, 3),
    "DynamicQuantizeMatMul": (0, 1),
    "MatMulIntegerToFloat": (0, 1),
}
_CONV_LIKE = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_GEMM_LIKE = {"Gemm": (0, 1), "QGemm": (0, 3)}
# com.microsoft ops (ORT's QOperator format) whose output shapes onnx cannot infer.
_CONTRIB_SAME_SHAPE = {
    "QuantizeLinear",
    "DequantizeLinear",
    "QLinearSigmoid",
    "QLinearLeakyRelu",
    "QLinearSoftmax",
    "QuickGelu",
    "FastGelu",
    "Gelu",
    "BiasGelu",
}
_CONTRIB = {
    "MatMulNBits",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QGemm",
    "QLinearAdd",
    "QLinearMul",
    "QLinearGlobalAveragePool",
    *_CONTRIB_SAME_SHAPE,
}
COUNTED_OPS = (*_MATMUL_LIKE, *_CONV_LIKE, *_GEMM_LIKE, "ConvTranspose", "MatMulNBits")


def _attr(node: NodeProto, name: str, default: Any) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default


def _values(model: ModelProto) -> list[onnx.ValueInfoProto]:
    return [*model.graph.input, *model.graph.value_info, *model.graph.output]


def _known_shapes(model: ModelProto) -> dict[str, Shape]:
    """Fully known shapes of every value, initializer and input after inference."""
    shapes: dict[str, Shape] = {t.name: list(t.dims) for t in model.graph.initializer}
    for value in _values(model):
        if not value.type.HasField("tensor_type") or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        # Exporters write -1 for an open dim: only positive values are sizes.
        if all(d.HasField("dim_value") and d.dim_value > 0 for d in dims):
            shapes[value.name] = [d.dim_value for d in dims]
    return shapes


def _contrib_output(node: NodeProto, shapes: dict[str, Shape]) -> Shape | None:
    # onnx's inference skips com.microsoft ops; give it the one shape it needs to go on.
    op, a = node.op_type, shapes.get(node.input[0])
    if not a:
        return None
    if op in _CONTRIB_SAME_SHAPE:
        return a
    if op == "MatMulNBits":
        return [*a[:-1], int(_attr(node, "N", 0))]
    if op in ("QLinearAdd", "QLinearMul"):
        b = shapes.get(node.input[3])
        return None if b is None else list(np.broadcast_shapes(tuple(a), tuple(b)))
    if op == "QLinearGlobalAveragePool":
        if _attr(node, "channels_last", 0):
            return [a[0], *[1] * (len(a) - 2), a[-1]]
        return [*a[:2], *[1] * (len(a) - 2)]
    b = shapes.get(node.input[_MATMUL_LIKE.get(op, _GEMM_LIKE.get(op, (0, 1)))[1]])
    if b is None:
        return None
    if op == "QGemm":
        m = a[1] if _attr(node, "transA", 0) else a[0]
        return [m, b[0] if _attr(node, "transB", 0) else b[1]]
    return _matmul_shape(a, b)


def _matmul_shape(a: Shape, b: Shape) -> Shape:
    """numpy.matmul's output shape (1-D operands promoted, then squeezed)."""
    a2, b2 = (a if len(a) > 1 else [1, *a]), (b if len(b) > 1 else [*b, 1])
    rank = max(len(a2), len(b2))
    lead_a, lead_b = [1] * (rank - len(a2)) + a2[:-2], [1] * (rank - len(b2)) + b2[:-2]
    batch = [max(x, y) for x, y in zip(lead_a, lead_b, strict=True)]
    out = [*batch, a2[-2], b2[-1]]
    if len(a) == 1:
        out.pop(-2)
    if len(b) == 1:
        out.pop(-1)
    return out


def _skeleton(model: ModelProto) -> ModelProto:
    """A copy without the contents of big initializers: inference needs only their dims."""
    copy = ModelProto(ir_version=model.ir_version)
    copy.opset_import.extend(model.opset_import)
    copy.functions.extend(model.functions)
    graph, source = copy.graph, model.graph
    for field in ("node", "input", "output", "value_info"):
        getattr(graph, field).extend(getattr(source, field))
    for value in [*graph.input, *graph.output, *graph.value_info]:
        # A -1 the exporter wrote would clash with the size inference finds: make it open.
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value <= 0:
                dim.ClearField("dim_value")
    for tensor in source.initializer:
        # Small ones keep their values: data propagation reads shape vectors (Reshape targets).
        if math.prod(tensor.dims) > 64:
            graph.initializer.add(name=tensor.name, dims=tensor.dims, data_type=tensor.data_type)
        else:
            graph.initializer.add().CopyFrom(tensor)
    return copy


def infer_shapes(model: ModelProto, input_shapes: dict[str, Shape]) -> dict[str, Shape]:
    """Shapes of all values with the inputs fixed, passing through known contrib ops."""
    model = _skeleton(model)
    for value in model.graph.input:
        if value.name in input_shapes and value.type.HasField("tensor_type"):
            dims = value.type.tensor_type.shape.dim
            del dims[:]
            for size in input_shapes[value.name]:
                dims.add().dim_value = size
    contrib = [n for n in model.graph.node if n.op_type in _CONTRIB and n.domain == "com.microsoft"]
    # One more round per contrib op at most: each round can unlock the next op in the chain.
    for _ in range(len(contrib) + 1):
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        shapes = _known_shapes(inferred)
        types = {v.name: v.type.tensor_type.elem_type for v in _values(inferred)}
        added = 0
        for node in contrib:
            out = _contrib_output(node, shapes)
            if out is not None and node.output[0] not in shapes:
                elem = types.get(node.input[0]) or TensorProto.FLOAT
                model.graph.value_info.append(
                    helper.make_tensor_value_info(node.output[0], elem, out)
                )
                added += 1
        if not added:
            return shapes
    return shapes


def node_macs(node: NodeProto, shapes: dict[str, Shape]) -> int | None:
    """MACs of one node, or None when a shape it needs is unknown."""
    op = node.op_type
    if op in _MATMUL_LIKE:
        a, b = (shapes.get(node.input[i]) for i in _MATMUL_LIKE[op])
        if a is None or b is None:
            return None
        return math.prod(_matmul_shape(a, b)) * a[-1]  # each output sums over K = a[-1]
    if op in _CONV_LIKE:
        w, y = shapes.get(node.input[_CONV_LIKE[op][1]]), shapes.get(node.output[0])
        # Every output element sums over (C / group) x kernel = W.shape[1:].
        return None if w is None or y is None else math.prod(y) * math.prod(w[1:])
    if op == "ConvTranspose":
        x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
        # Every input element scatters into (M / group) x kernel outputs.
        return None if x is None or w is None else math.prod(x) * math.prod(w[1:])
    if op in _GEMM_LIKE:
        a, b = (shapes.get(node.input[i]) for i in _GEMM_LIKE[op])
        if a is None or b is None:
            return None
        m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
        n = b[0] if _attr(node, "transB", 0) else b[1]
        return m * k * n
    if op == "MatMulNBits":
        a = shapes.get(node.input[0])
        k, n = int(_attr(node, "K", 0)), int(_attr(node, "N", 0))
        return None if a is None else math.prod(a[:-1]) * k * n
    return 0


def count_flops(
    model_path_or_proto: Path | str | ModelProto,
    input_shapes: dict[str, Shape] | None,
    default_dim: int = 1,
) -> dict[str, Any]:
    """Total and per-op-type MACs of the main graph, plus the share of the file that is weights.

    `total_macs` is left out when a counted node's shapes stay unknown (see `unresolved`).
    """
    if isinstance(model_path_or_proto, ModelProto):
        model = model_path_or_proto
        external = sum(
            tensor_nbytes(t)
            for t in model.graph.initializer
            if onnx.external_data_helper.uses_external_data(t)
        )
        file_bytes = model.ByteSize() + external
    else:
        path = Path(model_path_or_proto)
        model = load_proto(path)
        file_bytes = model_size_bytes(path, model)
    shapes = infer_shapes(
        model, resolve_input_shapes(graph_inputs(model), input_shapes, default_dim)
    )
    by_op: dict[str, int] = {}
    unresolved: list[str] = []
    for node in model.graph.node:
        if node.op_type not in COUNTED_OPS:
            continue
        macs = node_macs(node, shapes)
        if macs is None:
            unresolved.append(node.name or node.output[0])
            continue
        by_op[node.op_type] = by_op.get(node.op_type, 0) + macs
    result: dict[str, Any] = {
        "by_op_type": dict(sorted(by_op.items())),
        "unresolved": unresolved,
        "weights_share": weight_bytes(model) / file_bytes if file_bytes else 0.0,
    }
    if not unresolved:
        result["total_macs"] = sum(by_op.values())
    return result
