"""8-bit weights where ORT's static quantizer leaves them float: inside If/Loop/Scan bodies
(it does not enter them) and in recurrent ops (it has no QDQ LSTM/GRU).

Calibration cannot observe tensors inside a subgraph, so activations there stay float; the
weights are stored as int8 (or uint8) and a DequantizeLinear restores them at run time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, TensorProto, helper, numpy_helper

from app.compression.graph.analysis import iter_graphs, node_subgraphs

# Weight inputs per op type, and the axis of the weight's output channels (None: per tensor).
WEIGHT_SLOTS: dict[str, tuple[tuple[int, ...], int | None]] = {
    "Conv": ((1,), 0),
    "ConvTranspose": ((1,), None),
    "MatMul": ((1,), 1),
    "Gemm": ((1,), 1),
    "LSTM": ((1, 2), 1),
    "GRU": ((1, 2), 1),
    "RNN": ((1, 2), 1),
}
# Per-axis DequantizeLinear (its `axis`) exists from opset 13.
PER_AXIS_MIN_OPSET = 13
_MIN_ELEMENTS = 16  # smaller weights would grow by their scale and zero point
RECURRENT_OPS = ("LSTM", "GRU", "RNN")


@dataclass
class WeightOnly:
    """What store_weights_8bit did: nodes whose weights went to 8 bits, and those left alone."""

    subgraph_nodes: list[str] = field(default_factory=list)
    recurrent_nodes: list[str] = field(default_factory=list)  # of the main graph
    left_float: list[dict[str, str]] = field(default_factory=list)  # inside subgraphs


def _channel_axis(node: NodeProto, tensor: TensorProto, axis: int | None) -> int | None:
    if axis is None or len(tensor.dims) < 2:
        return None
    if node.op_type == "MatMul" and len(tensor.dims) != 2:
        return None
    if node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
        return 0
    return axis


def _quantize(
    array: np.ndarray, axis: int | None, signed: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(integers, scale, zero point): symmetric, per channel along axis or per tensor."""
    if axis is None:
        peak = np.abs(array).max(keepdims=True).reshape(())
    else:
        others = tuple(i for i in range(array.ndim) if i != axis)
        peak = np.abs(array).max(axis=others)
    scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    shape = [1] * array.ndim
    if axis is not None:
        shape[axis] = -1
    values = np.clip(np.rint(array / scale.reshape(shape)), -127, 127)
    if signed:
        return values.astype(np.int8), scale, np.zeros(scale.shape, np.int8)
    return (values + 128).astype(np.uint8), scale, np.full(scale.shape, 128, np.uint8)


def _replace(graph: GraphProto, tensor: TensorProto, axis: int | None, signed: bool) -> None:
    """Swap a float initializer for integers + scale + zero point and a DequantizeLinear."""
    name = tensor.name
    values, scale, zero = _quantize(numpy_helper.to_array(tensor), axis, signed)
    graph.initializer.remove(tensor)
    graph.initializer.extend(
        [
            numpy_helper.from_array(values, f"{name}_quantized"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(zero, f"{name}_zero_point"),
        ]
    )
    dequantize = helper.make_node(
        "DequantizeLinear",
        [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"],
        [name],
        f"{name}/DequantizeLinear",
    )
    if axis is not None:
        dequantize.attribute.append(helper.make_attribute("axis", axis))
    graph.node.insert(0, dequantize)


def store_weights_8bit(
    model: ModelProto,
    *,
    opset: int,
    per_channel: bool,
    weight_type: Literal["int8", "uint8"],
    op_types: list[str] | None,
) -> WeightOnly:
    """Store in 8 bits the float weights of weight nodes inside subgraphs and of recurrent
    nodes in the main graph."""
    result = WeightOnly()
    # A weight is only rewritten where every reader uses it as a weight.
    readers: Counter[str] = Counter(
        i for g in iter_graphs(model.graph) for n in g.node for i in n.input
    )
    outputs = {o.name for g in iter_graphs(model.graph) for o in g.output}
    chosen: dict[str, tuple[GraphProto, TensorProto, int | None]] = {}
    weight_reads: Counter[str] = Counter()
    pending: list[tuple[NodeProto, list[str], bool]] = []  # node, weights, in a subgraph

    def walk(
        graph: GraphProto, scope: dict[str, tuple[GraphProto, TensorProto]], depth: int
    ) -> None:
        scope = {**scope, **{t.name: (graph, t) for t in graph.initializer}}
        for node in graph.node:
            for sub in node_subgraphs(node):
                walk(sub, scope, depth + 1)
            slots = WEIGHT_SLOTS.get(node.op_type)
            if slots is None or (depth == 0 and node.op_type not in RECURRENT_OPS):
                continue
            label = node.name or node.op_type
            if op_types is not None and node.op_type not in op_types:
                if depth:
                    result.left_float.append({"node": label, "reason": "op_types leaves it out"})
                continue
            names = [node.input[i] for i in slots[0] if len(node.input) > i and node.input[i]]
            found = [scope.get(n) for n in names]
            if not names or any(f is None for f in found):
                if depth:
                    why = "its weight is not a constant initializer"
                    result.left_float.append({"node": label, "reason": why})
                continue
            for name, hit in zip(names, found, strict=True):
                assert hit is not None
                axis = _channel_axis(node, hit[1], slots[1]) if per_channel else None
                chosen[name] = (hit[0], hit[1], axis)
                weight_reads[name] += 1
            pending.append((node, names, depth > 0))

    walk(model.graph, {}, 0)
    signed = weight_type == "int8"
    per_axis = per_channel and opset >= PER_AXIS_MIN_OPSET
    for node, names, inside in pending:
        label = node.name or node.op_type
        reasons = []
        for name in names:
            tensor = chosen[name][1]
            if tensor.data_type != TensorProto.FLOAT:
                reasons.append(f"weight '{name}' is not float32")
            elif readers[name] != weight_reads[name] or name in outputs:
                reasons.append(f"weight '{name}' is also read as something else than a weight")
            elif int(np.prod(tensor.dims)) < _MIN_ELEMENTS:
                reasons.append(f"weight '{name}' is too small to gain from 8 bits")
        if reasons:
            if inside:
                result.left_float.append({"node": label, "reason": "; ".join(reasons)})
            continue
        for name in names:
            if name in chosen:  # a weight shared by several nodes is replaced once
                graph, tensor, axis = chosen.pop(name)
                _replace(graph, tensor, axis if per_axis else None, signed)
        (result.subgraph_nodes if inside else result.recurrent_nodes).append(label)
    return result
