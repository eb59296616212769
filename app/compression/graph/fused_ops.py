"""onnxruntime's CPU fusions (optimize_graph at level extended) undone for the quantizers.

FusedConv and FusedGemm are split back into Conv/Gemm and their activation, which ORT's static
quantizer knows (and ORT fuses again when it loads the quantized model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import GraphProto, ModelProto, NodeProto, helper, numpy_helper

from app.compression.graph.analysis import iter_graphs

_MS_DOMAIN = "com.microsoft"


def _attrs(node: NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _activation(
    node: NodeProto, source: str, graph: GraphProto, opset: int
) -> list[NodeProto] | None:
    """The activation of a Fused* node as plain ONNX nodes writing its output; None if unknown."""
    attrs = _attrs(node)
    kind = attrs.get("activation", b"")
    kind = kind.decode() if isinstance(kind, bytes) else str(kind)
    # FusedConv keeps the activation's parameters in a list, FusedGemm in named attributes.
    params = list(attrs.get("activation_params") or [])
    alpha = attrs.get("activation_alpha", params[0] if params else None)
    beta = attrs.get("activation_beta", params[1] if len(params) > 1 else None)
    out, name = node.output[0], f"{node.name or node.output[0]}/activation"
    if kind in ("Relu", "Sigmoid", "Tanh"):
        return [helper.make_node(kind, [source], [out], name)]
    if kind == "LeakyRelu" and alpha is not None:
        return [helper.make_node(kind, [source], [out], name, alpha=alpha)]
    if kind == "HardSigmoid" and alpha is not None and beta is not None:
        return [helper.make_node(kind, [source], [out], name, alpha=alpha, beta=beta)]
    if kind == "Clip" and len(params) == 2:
        if opset < 11:  # Clip took its bounds as attributes before opset 11
            return [helper.make_node(kind, [source], [out], name, min=params[0], max=params[1])]
        bounds = [f"{name}/min", f"{name}/max"]
        for bound, value in zip(bounds, params, strict=True):
            graph.initializer.append(numpy_helper.from_array(np.array(value, np.float32), bound))
        return [helper.make_node(kind, [source, *bounds], [out], name)]
    return None


def _split(node: NodeProto, graph: GraphProto, opset: int) -> list[NodeProto] | None:
    """FusedConv/FusedGemm as Conv/Gemm (+ Add of FusedConv's Z) + activation; None to keep."""
    base = node.name or node.output[0]
    product = f"{node.output[0]}/linear"
    kept = {
        k: v
        for k, v in _attrs(node).items()
        if not k.startswith("activation") and k != "leaky_relu_alpha"
    }
    op = "Conv" if node.op_type == "FusedConv" else "Gemm"
    inputs = list(node.input[:3])
    nodes = [helper.make_node(op, inputs, [product], base, **kept)]
    if op == "Conv" and len(node.input) > 3 and node.input[3]:  # Z: a sum before the activation
        nodes.append(
            helper.make_node("Add", [product, node.input[3]], [f"{product}_sum"], f"{base}/sum")
        )
        product = f"{product}_sum"
    activation = _activation(node, product, graph, opset)
    return None if activation is None else nodes + activation


def unfuse_contrib_ops(model: ModelProto, opset: int) -> int:
    """Replace FusedConv/FusedGemm nodes by their plain ONNX equivalent; returns the count."""
    count = 0
    for graph in iter_graphs(model.graph):
        nodes: list[NodeProto] = []
        for node in graph.node:
            plain = None
            if node.domain == _MS_DOMAIN and node.op_type in ("FusedConv", "FusedGemm"):
                plain = _split(node, graph, opset)
            nodes.extend(plain or [node])
            count += plain is not None
        if count:
            graph.ClearField("node")
            graph.node.extend(nodes)
    return count
