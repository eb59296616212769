"""Normalization that real-world exports need before ORT's quantizers and float16 converter."""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import (
    AttributeProto,
    GraphProto,
    ModelProto,
    NodeProto,
    TensorProto,
    helper,
    numpy_helper,
    version_converter,
)
from onnx.external_data_helper import uses_external_data

from app.compression.graph.analysis import iter_graphs, node_subgraphs

# QuantizeLinear/DequantizeLinear gained the per-channel `axis` attribute in opset 13.
PER_CHANNEL_MIN_OPSET = 13
# Ops whose constant input is a weight worth quantizing or converting.
WEIGHT_OPS = ("MatMul", "Gemm", "Conv", "ConvTranspose", "Gather", "LSTM", "GRU", "Attention")
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16)


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


def _folded_value(node: NodeProto, source: TensorProto) -> np.ndarray | None:
    """What a Transpose or Identity of a constant computes, or None if it is not one."""
    if node.domain not in ("", "ai.onnx") or uses_external_data(source):
        return None  # weights not in memory are left as they are
    if node.op_type == "Identity":
        return numpy_helper.to_array(source)
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        return np.transpose(numpy_helper.to_array(source), perm)
    return None


def fold_weight_transposes(model: ModelProto) -> int:
    """Turn Transpose/Identity nodes of initializers into initializers; returns the count.

    Exporters that skip constant folding write Linear layers as MatMul(x, Transpose(W)):
    the quantizers and weight passes only see weights that are initializers.
    """
    # Weights an IR < 4 model lists as graph inputs are overridable: never folded.
    overridable = {v.name for v in model.graph.input}
    sources: set[str] = set()
    folded: list[str] = []

    def walk(graph: GraphProto, scope: dict[str, tuple[GraphProto, TensorProto]]) -> None:
        scope = {**scope, **{t.name: (graph, t) for t in graph.initializer}}
        outputs = {o.name for o in graph.output}
        kept: list[NodeProto] = []
        for node in graph.node:
            for sub in node_subgraphs(node):
                walk(sub, scope)
            found = scope.get(node.input[0]) if len(node.input) == 1 else None
            value = None
            if found is not None and node.input[0] not in overridable:
                value = _folded_value(node, found[1])
            if value is None or node.output[0] in outputs:
                kept.append(node)
                continue
            tensor = numpy_helper.from_array(value, node.output[0])
            graph.initializer.append(tensor)
            scope[tensor.name] = (graph, tensor)
            sources.add(node.input[0])
            folded.append(node.output[0])
        if len(kept) != len(graph.node):
            graph.ClearField("node")
            graph.node.extend(kept)

    walk(model.graph, {})
    # The original of a folded weight would be stored twice: drop it where nothing reads it.
    graphs = list(iter_graphs(model.graph))
    used = {i for g in graphs for n in g.node for i in n.input}
    used |= {o.name for g in graphs for o in g.output}
    for graph in graphs:
        for tensor in [t for t in graph.initializer if t.name in sources - used]:
            graph.initializer.remove(tensor)
    return len(folded)


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
    # Domains onnx does not know (com.microsoft after optimize_graph) set no IR minimum.
    minimum = helper.find_min_ir_version_for(domains, ignore_unknown=True)
    converted.ir_version = max(converted.ir_version, minimum)
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


def subgraph_float_weights(
    model: ModelProto, op_types: tuple[str, ...] = WEIGHT_OPS
) -> list[NodeProto]:
    """Nodes inside If/Loop/Scan subgraphs that still read a float constant weight."""
    graphs = list(iter_graphs(model.graph))
    floats = {t.name for g in graphs for t in g.initializer if t.data_type in _FLOAT_TYPES}
    floats |= {
        n.output[0]
        for g in graphs
        for n in g.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].t.data_type in _FLOAT_TYPES
    }
    return [
        node
        for graph in graphs[1:]
        for node in graph.node
        if node.op_type in op_types
        # Gather reads its table as input 0; the others their weights as inputs 1 and 2.
        and any(
            i in floats for i in (node.input[:1] if node.op_type == "Gather" else node.input[1:3])
        )
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
    """Fold Constant weights and their Transposes, drop weight inputs, upgrade the opset if
    asked; say what was done."""
    prep = Preparation()
    folded = fold_constant_weights(model)
    if folded:
        prep.notes.append(f"folded {folded} Constant node(s) into initializers")
    dropped = drop_initializer_inputs(model)
    if dropped:
        prep.notes.append(f"removed {dropped} initializer(s) that were also listed as graph inputs")
    transposed = fold_weight_transposes(model)
    if transposed:
        prep.notes.append(f"folded {transposed} Transpose/Identity node(s) of weights")
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
    for sub in node_subgraphs(node):
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
    # ORT puts contrib ops inside If bodies without importing their domain in the model: ORT
    # runs that, onnx's checker (which every stored model passes) does not.
    used = {node.domain for graph in iter_graphs(model.graph) for node in graph.node}
    declared = {opset.domain for opset in model.opset_import}
    for domain in sorted(used - declared - {"", "ai.onnx"}):
        model.opset_import.append(onnx.helper.make_opsetid(domain, 1))
    onnx.save_model(
        model, str(path), save_as_external_data=external_data, location=f"{path.name}.data"
    )
