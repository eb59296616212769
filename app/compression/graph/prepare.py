"""Normalization that real-world exports need before ORT's quantizers and float16 converter."""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, helper, version_converter

from app.compression.graph.analysis import iter_graphs

# QuantizeLinear/DequantizeLinear gained the per-channel `axis` attribute in opset 13.
PER_CHANNEL_MIN_OPSET = 13
# Ops whose constant input is a weight worth quantizing or converting.
WEIGHT_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose", "Gather", "LSTM", "GRU", "Attention")


@dataclass
class Preparation:
    """What prepare_model did (notes) and what it could not do (warnings)."""

    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    opset: int = 0
    subgraph_weight_nodes: list[str] = field(default_factory=list)


def default_opset(model: ModelProto) -> int:
    """Version of the default ONNX domain the model imports (0 if none)."""
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    return max(versions, default=0)


def fold_constant_weights(model: ModelProto) -> int:
    """Turn tensor-valued Constant nodes into initializers of their graph; returns the count."""
    folded = 0
    for graph in iter_graphs(model.graph):
        # An initializer cannot be a graph output of its own graph in every runtime: keep those.
        outputs = {o.name for o in graph.output}
        kept: list[NodeProto] = []
        for node in graph.node:
            attr = node.attribute[0] if len(node.attribute) == 1 else None
            if (
                node.op_type == "Constant"
                and node.domain in ("", "ai.onnx")
                and attr is not None
                and attr.name == "value"
                and attr.type == AttributeProto.TENSOR
                and node.output[0] not in outputs
            ):
                tensor = graph.initializer.add()
                tensor.CopyFrom(attr.t)
                tensor.name = node.output[0]
                folded += 1
            else:
                kept.append(node)
        if len(kept) != len(graph.node):
            graph.ClearField("node")
            graph.node.extend(kept)
    return folded


def drop_initializer_inputs(model: ModelProto) -> int:
    """Remove weights listed as graph inputs (keep_initializers_as_inputs exports)."""
    # Such weights can be overridden at run time, so ORT neither folds nor quantizes them.
    if model.ir_version < 4:  # before IR 4 every initializer had to be a graph input
        return 0
    weights = {t.name for t in model.graph.initializer}
    kept = [v for v in model.graph.input if v.name not in weights]
    dropped = len(model.graph.input) - len(kept)
    if dropped:
        model.graph.ClearField("input")
        model.graph.input.extend(kept)
    return dropped


def upgrade_opset(model: ModelProto, target: int) -> ModelProto:
    """The model converted to opset `target` by onnx's version converter (raises on failure)."""
    converted = version_converter.convert_version(model, target)
    domains = [helper.make_opsetid(o.domain, o.version) for o in converted.opset_import]
    converted.ir_version = max(converted.ir_version, helper.find_min_ir_version_for(domains))
    onnx.checker.check_model(converted)
    return converted


def name_unnamed_nodes(model: ModelProto) -> None:
    """Give every node of every graph a unique name (ORT's tools match nodes by name)."""
    graphs = list(iter_graphs(model.graph))
    taken = {n.name for g in graphs for n in g.node}
    counter = 0
    for graph in graphs:
        for node in graph.node:
            while not node.name:
                counter += 1
                if f"{node.op_type}_mp{counter}" not in taken:
                    node.name = f"{node.op_type}_mp{counter}"
                    taken.add(node.name)


def subgraph_weight_nodes(model: ModelProto, op_types: tuple[str, ...] = WEIGHT_OPS) -> list[str]:
    """Names (or op types) of nodes inside If/Loop/Scan subgraphs that read a constant weight."""
    graphs = list(iter_graphs(model.graph))
    constants = {t.name for g in graphs for t in g.initializer} | {
        n.output[0] for g in graphs for n in g.node if n.op_type == "Constant"
    }
    return [
        node.name or node.op_type
        for graph in graphs[1:]
        for node in graph.node
        if node.op_type in op_types and any(i in constants for i in node.input[1:])
    ]


def subgraph_op_counts(model: ModelProto) -> dict[str, int]:
    """Nodes per op type inside subgraphs only."""
    counts: Counter[str] = Counter()
    for graph in list(iter_graphs(model.graph))[1:]:
        counts.update(node.op_type for node in graph.node)
    return dict(sorted(counts.items()))


def prepare_model(
    model: ModelProto, *, min_opset: int | None = None, op_types: tuple[str, ...] = WEIGHT_OPS
) -> tuple[ModelProto, Preparation]:
    """Fold Constant weights, drop weight inputs, upgrade the opset if asked; say what was done."""
    prep = Preparation()
    folded = fold_constant_weights(model)
    if folded:
        prep.notes.append(f"folded {folded} Constant node(s) into initializers")
    dropped = drop_initializer_inputs(model)
    if dropped:
        prep.notes.append(f"removed {dropped} initializer(s) that were also listed as graph inputs")
    opset = default_opset(model)
    if min_opset is not None and 0 < opset < min_opset:
        try:
            model = upgrade_opset(model, min_opset)
            prep.notes.append(f"upgraded the model from opset {opset} to {min_opset}")
            opset = min_opset
        except Exception as exc:  # the converter raises several types for ops it cannot map
            prep.warnings.append(f"could not upgrade opset {opset} to {min_opset}: {exc}")
    prep.opset = opset
    prep.subgraph_weight_nodes = subgraph_weight_nodes(model, op_types)
    return model, prep


def consumed_names(node: NodeProto) -> list[str]:
    """Inputs of the node plus the outer-scope values its subgraphs read."""
    names = list(node.input)
    for attr in node.attribute:
        subgraphs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
        for sub in subgraphs:
            names += [i for g in iter_graphs(sub) for n in g.node for i in n.input]
    return names


def topological_sort(graph: GraphProto) -> None:
    """Reorder nodes so producers precede consumers, outer-scope reads of subgraphs included."""
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    consumers: list[list[int]] = [[] for _ in nodes]
    pending = [0] * len(nodes)
    for i, node in enumerate(nodes):
        for j in {producer[n] for n in consumed_names(node) if n in producer} - {i}:
            consumers[j].append(i)
            pending[i] += 1
    # A heap of indices keeps the original order wherever the dependencies allow it.
    ready = [i for i, count in enumerate(pending) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in consumers[i]:
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(nodes):
        return  # a cycle: not ours to fix, leave the graph as the tool made it
    sorted_nodes = [nodes[i] for i in order]
    graph.ClearField("node")
    graph.node.extend(sorted_nodes)


def sort_all_graphs(model: ModelProto) -> None:
    """Topologically sort the main graph and every subgraph (ORT's tools append nodes last)."""
    for graph in list(iter_graphs(model.graph)):
        topological_sort(graph)


def resave_sorted(path: Path, external_data: bool) -> None:
    """Rewrite the model at path with every graph topologically sorted."""
    model = onnx.load(str(path))
    sort_all_graphs(model)
    onnx.save_model(
        model, str(path), save_as_external_data=external_data, location=f"{path.name}.data"
    )
