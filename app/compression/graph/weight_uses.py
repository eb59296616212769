"""Which node uses which weight, and what each built-in pass would touch or leave alone.

Read off the protobuf alone (no onnxruntime): the rules mirror the passes in
app/compression/passes/ with their default settings, so they are a forecast, not a run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, helper

from app.compression.graph.analysis import iter_weight_tensors, tensor_numel

# A weight reaches its real consumer through these (folded by prepare_model before a pass).
PASSTHROUGH_OPS = ("Transpose", "Identity", "DequantizeLinear", "Cast")
RECURRENT_OPS = ("LSTM", "GRU", "RNN")
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)


@dataclass
class NodeUse:
    """One node of the model, with the constant weights it reads (after pass-through ops)."""

    node: NodeProto
    depth: int  # 0: main graph; 1+: inside If/Loop/Scan bodies
    weights: dict[int, TensorProto] = field(default_factory=dict)  # input index -> tensor

    @property
    def op_type(self) -> str:
        return self.node.op_type

    def weight(self, index: int) -> TensorProto | None:
        return self.weights.get(index)

    def float_weights(self) -> list[TensorProto]:
        return [t for t in self.weights.values() if t.data_type in _FLOAT_TYPES]


def _walk(graph: GraphProto, depth: int) -> Iterator[tuple[NodeProto, int]]:
    for node in graph.node:
        yield node, depth
        for attr in node.attribute:
            if attr.type == AttributeProto.GRAPH:
                yield from _walk(attr.g, depth + 1)
            elif attr.type == AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from _walk(sub, depth + 1)


def _constant_outputs(nodes: list[tuple[NodeProto, int]]) -> dict[str, TensorProto]:
    """Constant-node outputs by name: weights as much as initializers are."""
    found: dict[str, TensorProto] = {}
    for node, _ in nodes:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = attr.t
    return found


def node_uses(model: ModelProto) -> list[NodeUse]:
    """Every node (subgraphs included, Constant nodes left out) with the weights it reads."""
    nodes = list(_walk(model.graph, 0))
    weights: dict[str, TensorProto] = {t.name: t for t in iter_weight_tensors(model) if t.name}
    weights.update(_constant_outputs(nodes))
    # What a pass-through node yields when its data input is a weight: that same weight.
    changed = True
    while changed:
        changed = False
        for node, _ in nodes:
            if node.op_type not in PASSTHROUGH_OPS or not node.input or not node.output:
                continue
            source = weights.get(node.input[0])
            if source is not None and node.output[0] not in weights:
                weights[node.output[0]] = source
                changed = True
    uses = []
    for node, depth in nodes:
        if node.op_type == "Constant" or node.op_type in PASSTHROUGH_OPS:
            continue
        use = NodeUse(node=node, depth=depth)
        for index, name in enumerate(node.input):
            if name in weights:
                use.weights[index] = weights[name]
        uses.append(use)
    return uses


def params_by_op(model: ModelProto, uses: list[NodeUse]) -> dict[str, int]:
    """Weight elements per consuming op type; each tensor counted once, at its first consumer."""
    seen: set[int] = set()
    counts: Counter[str] = Counter()
    for use in uses:
        for tensor in use.weights.values():
            if id(tensor) not in seen:
                seen.add(id(tensor))
                counts[use.op_type] += tensor_numel(tensor)
    unused = sum(tensor_numel(t) for t in iter_weight_tensors(model) if id(t) not in seen)
    if unused:
        counts["(unconsumed)"] += unused
    return dict(counts.most_common())


def _attrs(node: NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def gemm_as_matmul(use: NodeUse) -> bool:
    """A Gemm the quantizers rewrite into MatMul(+Add): constant B, alpha = beta = 1, no transA."""
    attrs = _attrs(use.node)
    return (
        use.weight(1) is not None
        and not attrs.get("transA", 0)
        and attrs.get("alpha", 1.0) == 1.0
        and attrs.get("beta", 1.0) == 1.0
    )


def weight_only_fits(use: NodeUse, block_size: int = 32) -> bool:
    """quantize_weight_only's rule: a 2-D float constant weight whose K is a block multiple."""
    if use.op_type not in ("MatMul", "Gemm") or (use.op_type == "Gemm" and not gemm_as_matmul(use)):
        return False
    tensor = use.weight(1)
    if tensor is None or tensor.data_type not in _FLOAT_TYPES:
        return False
    dims = list(tensor.dims)
    if len(dims) < 2 or any(d != 1 for d in dims[:-2]):
        return False
    transposed = use.op_type == "Gemm" and bool(_attrs(use.node).get("transB", 0))
    k = dims[-1] if transposed else dims[-2]
    return k % block_size == 0


def is_embedding(use: NodeUse) -> bool:
    """A Gather on a constant float table of rank 2: an embedding lookup."""
    table = use.weight(0)
    return (
        use.op_type == "Gather"
        and table is not None
        and table.data_type in _FLOAT_TYPES
        and len(table.dims) == 2
    )
