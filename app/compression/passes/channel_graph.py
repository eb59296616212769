"""Weight plumbing for the weight passes, and channel spaces: which tensors share a channel axis."""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

from onnx import GraphProto, ModelProto, NodeProto, TensorProto, numpy_helper

from app.compression.graph.analysis import iter_graphs, node_subgraphs

# Where each op keeps the weight these passes change (Gather: the embedding table).
WEIGHT_INPUT = {"MatMul": 1, "Gemm": 1, "Conv": 1, "ConvTranspose": 1, "Gather": 0}

# Ops that act on every element alone: a channel of the output depends on that channel only.
ELEMENTWISE = frozenset(
    {
        *("Relu", "LeakyRelu", "PRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu"),
        *("Selu", "Celu", "Softplus", "Softsign", "ThresholdedRelu", "Gelu", "Mish", "Erf"),
        *("Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal", "Identity", "Sin", "Cos", "Floor"),
        *("Ceil", "Round", "Sign", "Clip", "Dropout", "Cast", "Add", "Sub", "Mul", "Div", "Pow"),
        *("Max", "Min", "Sum", "Mean"),
    }
)
# Ops on NCHW tensors that keep channels apart; the value is which inputs hold per-channel params.
CHANNELWISE = {
    "BatchNormalization": (1, 2, 3, 4),
    "InstanceNormalization": (1, 2),
    "MaxPool": (),
    "AveragePool": (),
    "LpPool": (),
    "GlobalAveragePool": (),
    "GlobalMaxPool": (),
    "GlobalLpPool": (),
}


def node_label(node: NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}#{index}"


@dataclass
class WeightRef:
    """One weight initializer of a node: `graph` holds the initializer, `owner` the node."""

    graph: GraphProto
    owner: GraphProto
    node: NodeProto
    label: str
    tensor: TensorProto


def find_weights(model: ModelProto, op_types: list[str]) -> tuple[list[WeightRef], list[str]]:
    """Float weight initializers of nodes of op_types in all graphs, and why others were left."""
    refs: list[WeightRef] = []
    skipped: list[str] = []

    def walk(graph: GraphProto, scope: dict[str, tuple[GraphProto, TensorProto]]) -> None:
        scope = {**scope, **{t.name: (graph, t) for t in graph.initializer}}
        for index, node in enumerate(graph.node):
            for sub in node_subgraphs(node):
                walk(sub, scope)
            slot = WEIGHT_INPUT.get(node.op_type)
            if node.op_type not in op_types or slot is None or len(node.input) <= slot:
                continue
            found = scope.get(node.input[slot])
            label = node_label(node, index)
            if found is None:
                skipped.append(f"{label}: weight '{node.input[slot]}' is not an initializer")
            elif found[1].data_type != TensorProto.FLOAT:
                skipped.append(f"{label}: weight '{found[1].name}' is not float32")
            else:
                refs.append(WeightRef(found[0], graph, node, label, found[1]))

    walk(model.graph, {})
    return refs, skipped


def shape_map(inferred: ModelProto) -> dict[str, list[int | None] | None]:
    """Shape (None for unknown dims) of every value of a shape-inferred model, None if rank-less."""
    graph = inferred.graph
    shapes: dict[str, list[int | None] | None] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if not tensor_type.HasField("shape"):
            shapes[value.name] = None
            continue
        dims = tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    shapes.update({t.name: list(t.dims) for t in graph.initializer})
    return shapes


@dataclass
class Space:
    """Tensors sharing one channel axis, the layers producing it and what pruning must slice."""

    tensors: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (axis, block)
    producers: list[tuple[int, str, int]] = field(default_factory=list)  # node, weight, axis
    sink_inputs: list[str] = field(default_factory=list)
    slices: list[tuple[str, int, int]] = field(default_factory=list)  # initializer, axis, block
    groups: list[int] = field(default_factory=list)  # depthwise Convs whose group shrinks
    reshapes: list[tuple[str, int, int]] = field(default_factory=list)  # shape init, pos, block
    channels: int | None = None
    reasons: list[str] = field(default_factory=list)

    def freeze(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


class ChannelTracer:
    """Follows a layer's output channels forward and backward through the main graph."""

    def __init__(
        self,
        model: ModelProto,
        shapes: dict[str, list[int | None] | None],
        op_types: list[str],
    ) -> None:
        graph = model.graph
        self.op_types = op_types
        self.nodes = list(graph.node)
        self.shapes = shapes
        self.inits = {t.name: t for t in graph.initializer}
        self.small = {
            name: numpy_helper.to_array(t)
            for name, t in self.inits.items()
            if math.prod(t.dims) < 16
        }
        self.producer = {o: i for i, n in enumerate(self.nodes) for o in n.output if o}
        self.consumers: dict[str, list[int]] = defaultdict(list)
        for i, node in enumerate(self.nodes):
            for name in dict.fromkeys(node.input):
                if name:
                    self.consumers[name].append(i)
        self.uses = Counter(i for g in iter_graphs(graph) for n in g.node for i in n.input)
        self.in_subgraphs = {
            name
            for node in self.nodes
            for sub in node_subgraphs(node)
            for g in iter_graphs(sub)
            for n in g.node
            for name in n.input
        }
        self.graph_inputs = {v.name for v in graph.input} - set(self.inits)
        self.graph_outputs = {v.name for v in graph.output}
        self.owner: dict[str, Space] = {}

    def attr(self, node: NodeProto, name: str, default: int) -> int:
        return next((int(a.i) for a in node.attribute if a.name == name), default)

    def layer_kind(self, i: int) -> str | None:
        """'layer' for Conv/Gemm/MatMul with a constant weight, 'depthwise', 'grouped' or None."""
        node = self.nodes[i]
        if node.op_type not in ("Conv", "Gemm", "MatMul") or len(node.input) < 2:
            return None
        weight = self.inits.get(node.input[1])
        if weight is None or (node.op_type != "Conv" and len(weight.dims) != 2):
            return None
        if node.op_type == "Conv":
            group = self.attr(node, "group", 1)
            if group == 1:
                return "layer"
            return "depthwise" if weight.dims[0] == group and weight.dims[1] == 1 else "grouped"
        return "layer"

    def out_axis(self, i: int) -> tuple[int, int]:
        """(axis of the weight holding output channels, channel count) of a layer."""
        node = self.nodes[i]
        dims = self.inits[node.input[1]].dims
        if node.op_type == "Gemm" and not self.attr(node, "transB", 0):
            return 1, dims[1]
        return (1, dims[1]) if node.op_type == "MatMul" else (0, dims[0])

    def rank(self, name: str) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)

    def dim(self, name: str, axis: int) -> int | None:
        shape = self.shapes.get(name)
        return None if shape is None or axis >= len(shape) else shape[axis]

    def trace(self, start: int) -> Space:
        """The channel space of layer `start`'s output, with every reason it cannot be pruned."""
        space = Space()
        queue: deque[str] = deque()
        seen: set[tuple[int, str]] = set()
        self._producer(space, start, queue)
        seen.add((start, "out"))
        while queue:
            name = queue.popleft()
            if name in self.graph_outputs:
                space.freeze(f"its channels reach the graph output '{name}'")
            if name in self.in_subgraphs:
                space.freeze(f"'{name}' is read inside a subgraph")
            producer = self.producer.get(name)
            if producer is None:
                where = "graph input" if name in self.graph_inputs else "constant"
                space.freeze(f"its channels are tied to the {where} '{name}'")
            visits = [(producer, "out")] if producer is not None else []
            visits += [(c, "in") for c in self.consumers.get(name, [])]
            for i, role in visits:
                key = (i, role if self.layer_kind(i) == "layer" else "any")
                if key not in seen:
                    seen.add(key)
                    self._visit(space, i, name, role, queue)
        self._check_counts(space)
        return space

    def _add(self, space: Space, name: str, axis: int, block: int, queue: deque[str]) -> None:
        if self.rank(name) is None:
            space.freeze(f"the shape of '{name}' is unknown (run shape inference first)")
            return
        known = space.tensors.get(name)
        if known is not None:
            if known != (axis, block):
                space.freeze(f"'{name}' carries the channels on two different axes")
            return
        if self.owner.get(name, space) is not space:
            space.freeze(f"'{name}' belongs to another layer's channels")
            return
        space.tensors[name] = (axis, block)
        self.owner[name] = space
        queue.append(name)

    def _slice(self, space: Space, name: str, axis: int, block: int) -> None:
        if self.uses[name] > 1:
            space.freeze(f"initializer '{name}' is shared by {self.uses[name]} nodes")
        space.slices.append((name, axis, block))

    def _producer(self, space: Space, i: int, queue: deque[str]) -> None:
        node = self.nodes[i]
        w_axis, count = self.out_axis(i)
        if space.channels not in (None, count):
            space.freeze(f"tied layers have different channel counts ({space.channels}, {count})")
        space.channels = space.channels or count
        space.producers.append((i, node.input[1], w_axis))
        self._slice(space, node.input[1], w_axis, 1)
        if len(node.input) > 2 and node.input[2]:
            bias = self.inits.get(node.input[2])
            if bias is None:
                space.freeze(f"the bias of {node_label(node, i)} is not an initializer")
            elif bias.dims and bias.dims[-1] == count:
                self._slice(space, bias.name, len(bias.dims) - 1, 1)
        rank = self.rank(node.output[0])
        axis = 1 if node.op_type == "Conv" or rank is None else rank - 1
        self._add(space, node.output[0], axis, 1, queue)

    def _visit(self, space: Space, i: int, name: str, role: str, queue: deque[str]) -> None:
        node, label = self.nodes[i], node_label(self.nodes[i], i)
        kind, op = self.layer_kind(i), node.op_type
        axis, block = space.tensors[name]
        if (op in ELEMENTWISE or op in CHANNELWISE) and self._extra_outputs_used(node):
            space.freeze(f"{op} '{label}' has a second output in use")
        elif kind == "layer" and role == "out":
            if op not in self.op_types:
                space.freeze(f"its channels are tied to {op} '{label}', which op_types leaves out")
            else:
                self._producer(space, i, queue)
        elif kind == "layer" and name == node.input[0]:
            self._sink(space, i, name, axis, block)
        elif kind == "layer":
            space.freeze(f"its channels feed a weight or bias input of {op} '{label}'")
        elif op in ELEMENTWISE:
            self._elementwise(space, i, name, queue)
        elif (op in CHANNELWISE or kind == "depthwise") and axis == 1 and block == 1:
            params = CHANNELWISE.get(op, (1, 2))
            for slot in params:
                if len(node.input) > slot and node.input[slot]:
                    if node.input[slot] not in self.inits:
                        space.freeze(f"a parameter of {op} '{label}' is not an initializer")
                    self._slice(space, node.input[slot], 0, 1)
            if kind == "depthwise":
                space.groups.append(i)
            self._add(space, node.input[0], 1, 1, queue)
            self._add(space, node.output[0], 1, 1, queue)
        elif op == "MatMul":
            self._matmul(space, i, name, queue)
        elif op in ("Flatten", "Reshape") and name == node.input[0]:
            self._flatten(space, i, name, queue)
        elif kind == "grouped":
            space.freeze(f"grouped Conv '{label}' mixes its channels within groups")
        elif op == "Concat":
            space.freeze(f"its channels are tied to other tensors by Concat '{label}' (left alone)")
        elif op in ("LayerNormalization", "Softmax", "LogSoftmax", "LRN") or op.startswith(
            "Reduce"
        ):
            space.freeze(f"{op} '{label}' mixes its channels")
        else:
            space.freeze(f"{op} '{label}' uses its channels in a way the pass does not follow")

    def _extra_outputs_used(self, node: NodeProto) -> bool:
        return any(o and (o in self.consumers or o in self.graph_outputs) for o in node.output[1:])

    def _sink(self, space: Space, i: int, name: str, axis: int, block: int) -> None:
        node, rank = self.nodes[i], self.rank(name) or 0
        if node.op_type == "Conv":
            ok, w_axis = axis == 1 and block == 1, 1
        elif node.op_type == "Gemm":
            ok, w_axis = axis == self.attr(node, "transA", 0) ^ 1, self.attr(node, "transB", 0)
        else:
            ok, w_axis = axis == rank - 1, 0
        if not ok:
            space.freeze(
                f"{node.op_type} '{node_label(node, i)}' reads its channels on an axis "
                "it does not reduce"
            )
            return
        self._slice(space, node.input[1], w_axis, block)
        space.sink_inputs.append(name)

    def _elementwise(self, space: Space, i: int, name: str, queue: deque[str]) -> None:
        node = self.nodes[i]
        axis, block = space.tensors[name]
        from_end = (self.rank(name) or 0) - axis
        width = self.dim(name, axis)
        for other in node.input:
            rank = self.rank(other) if other else None
            if not other or other == name or (rank is not None and rank < from_end):
                continue  # absent, or broadcast along the channel axis
            size = None if rank is None else self.dim(other, rank - from_end)
            if size == 1:
                continue
            if size is None or width is None or size != width:
                space.freeze(
                    f"cannot match the channels of '{other}' in {node.op_type} "
                    f"'{node_label(node, i)}'"
                )
            elif other in self.inits:
                self._slice(space, other, len(self.inits[other].dims) - from_end, block)
            else:
                self._add(space, other, (rank or 0) - from_end, block, queue)
        out_rank = self.rank(node.output[0])
        if out_rank is not None:
            self._add(space, node.output[0], out_rank - from_end, block, queue)
        else:
            space.freeze(f"the shape of '{node.output[0]}' is unknown")

    def _matmul(self, space: Space, i: int, name: str, queue: deque[str]) -> None:
        # In P @ V (attention), V's last axis passes straight to the output's last axis.
        node, label = self.nodes[i], node_label(self.nodes[i], i)
        axis, block = space.tensors[name]
        rank = self.rank(name) or 0
        if name == node.input[0] or axis != rank - 1 or rank < 2 or node.input[0] in space.tensors:
            space.freeze(
                f"MatMul '{label}' contracts its channels with another activation "
                "(e.g. attention scores)"
            )
            return
        other = node.input[1] if name == node.output[0] else node.output[0]
        self._add(space, other, (self.rank(other) or 0) - 1, block, queue)

    def _flatten(self, space: Space, i: int, name: str, queue: deque[str]) -> None:
        node, label = self.nodes[i], node_label(self.nodes[i], i)
        axis, block = space.tensors[name]
        shape = self.shapes.get(name) or []
        out = node.output[0]
        trailing = shape[axis + 1 :]
        if node.op_type == "Flatten":
            start = self.attr(node, "axis", 1)
            ok, out_axis = (start if start >= 0 else start + len(shape)) == axis, 1
        else:
            ok, out_axis = self._reshape_keeps_channels(space, node, axis, block, shape), axis
        if not ok or any(d is None for d in trailing):
            space.freeze(
                f"{node.op_type} '{label}' splits or moves the channel axis "
                "(e.g. into attention heads)"
            )
            return
        self._add(space, out, out_axis, block * math.prod(d or 1 for d in trailing), queue)

    def _reshape_keeps_channels(
        self, space: Space, node: NodeProto, axis: int, block: int, shape: list[int | None]
    ) -> bool:
        # Only a Reshape that folds every axis after the channels into it, leading axes kept.
        target = self.small.get(node.input[1])
        if target is None or target.size != axis + 1 or self.attr(node, "allowzero", 0):
            return False
        lead = [int(v) for v in target[:axis]]
        if any(v not in (0, -1, shape[j]) for j, v in enumerate(lead)):
            return False
        value = int(target[axis])
        if value == 0:
            return not shape[axis + 1 :]
        if value > 0:
            if self.uses[node.input[1]] > 1:
                space.freeze(f"Reshape shape '{node.input[1]}' is shared by several nodes")
            space.reshapes.append(
                (node.input[1], axis, block * math.prod(d or 1 for d in shape[axis + 1 :]))
            )
        return True

    def _check_counts(self, space: Space) -> None:
        for name, (axis, block) in space.tensors.items():
            size = self.dim(name, axis)
            if space.channels and size is not None and size != space.channels * block:
                space.freeze(f"'{name}' has {size} channels where {space.channels} were expected")
