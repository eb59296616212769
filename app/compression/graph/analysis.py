"""Read-only facts about an ONNX file: validity, inputs/outputs, op counts, parameter sizes."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto

from app.compression.graph.model_info import SYMBOLIC, ModelInfo, TensorSpec

# Packed sub-byte types: numpy reports 1 byte per element, storage holds 2 per byte.
_PACKED_4BIT = {
    getattr(TensorProto, name)
    for name in ("INT4", "UINT4", "FLOAT4E2M1")
    if hasattr(TensorProto, name)
}


class InvalidModelError(Exception):
    """The file is not a usable ONNX model; the message says why in user terms."""


def iter_graphs(graph: GraphProto) -> Iterator[GraphProto]:
    """The graph and every If/Loop/Scan (or other) subgraph under it, depth first."""
    yield graph
    for node in graph.node:
        for sub in node_subgraphs(node):
            yield from iter_graphs(sub)


def node_subgraphs(node: NodeProto) -> list[GraphProto]:
    """The bodies a node holds (If branches, a Loop or Scan body), in attribute order."""
    return [
        sub
        for attr in node.attribute
        for sub in ([attr.g] if attr.type == AttributeProto.GRAPH else attr.graphs)
    ]


def count_ops(model: ModelProto) -> dict[str, int]:
    """Nodes per op type over the main graph and all subgraphs."""
    counts: Counter[str] = Counter()
    for graph in iter_graphs(model.graph):
        counts.update(node.op_type for node in graph.node)
    return dict(sorted(counts.items()))


def iter_weight_tensors(model: ModelProto) -> Iterator[TensorProto]:
    """Initializers and Constant-node tensors of every graph (sparse ones as their values)."""
    for graph in iter_graphs(model.graph):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
        for node in graph.node:
            if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
                continue
            for attr in node.attribute:
                if attr.name == "value":
                    yield attr.t
                elif attr.name == "sparse_value":
                    yield attr.sparse_tensor.values


def tensor_numel(tensor: TensorProto) -> int:
    """Element count from the dims alone, so external data is never touched."""
    return math.prod(tensor.dims)


def tensor_nbytes(tensor: TensorProto) -> int:
    """Storage bytes of a tensor, computed from dims and dtype rather than read."""
    if tensor.data_type == TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    numel = tensor_numel(tensor)
    if tensor.data_type in _PACKED_4BIT:
        return (numel + 1) // 2
    try:
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return 0
    return numel * itemsize


def weight_bytes(model: ModelProto) -> int:
    """Bytes held by initializers and Constant tensors, subgraphs included."""
    return sum(tensor_nbytes(t) for t in iter_weight_tensors(model))


def param_count(model: ModelProto) -> int:
    """Elements held by initializers and Constant tensors, subgraphs included."""
    return sum(tensor_numel(t) for t in iter_weight_tensors(model))


def external_data_files(model: ModelProto, base_dir: Path) -> list[Path]:
    """Distinct external data files the model refers to, resolved against base_dir."""
    locations: set[str] = set()
    for tensor in iter_weight_tensors(model):
        if onnx.external_data_helper.uses_external_data(tensor):
            for entry in tensor.external_data:
                if entry.key == "location":
                    locations.add(entry.value)
    return [base_dir / loc for loc in sorted(locations)]


def load_proto(path: Path) -> ModelProto:
    """The model's protobuf without its external data (cheap even for big models)."""
    return onnx.load(str(path), load_external_data=False)


def model_size_bytes(path: Path, model: ModelProto | None = None) -> int:
    """Size on disk: the .onnx file plus every external data file it uses."""
    model = model if model is not None else load_proto(path)
    extra = sum(p.stat().st_size for p in external_data_files(model, path.parent) if p.exists())
    return path.stat().st_size + extra


def _dtype_name(elem_type: int) -> str:
    if elem_type == TensorProto.STRING:
        return "string"
    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name)
    except (KeyError, TypeError, ValueError):
        return "undefined"


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        # Sequences, maps and optionals have no single dtype; name the container instead.
        return TensorSpec(name=value.name, dtype=str(kind or "undefined"), shape=[])
    tensor_type = value.type.tensor_type
    if not tensor_type.HasField("shape"):
        return TensorSpec(
            name=value.name, dtype=_dtype_name(tensor_type.elem_type), shape=[], rank_known=False
        )
    shape: list[int | str] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            shape.append(int(dim.dim_value))
        elif dim.HasField("dim_param") and dim.dim_param:
            shape.append(dim.dim_param)
        else:
            shape.append(SYMBOLIC)
    return TensorSpec(name=value.name, dtype=_dtype_name(tensor_type.elem_type), shape=shape)


def graph_inputs(model: ModelProto) -> list[TensorSpec]:
    """Inputs a caller must feed: graph inputs that no initializer backs."""
    # Old exporters (IR < 4) list every weight as a graph input too; those are not inputs.
    weights = {t.name for t in model.graph.initializer}
    return [_spec(v) for v in model.graph.input if v.name not in weights]


def inspect_model(path: Path) -> ModelInfo:
    """Validate the file as an ONNX model and describe it; InvalidModelError if unusable."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise InvalidModelError("the file is empty")
    try:
        model = load_proto(path)
    except OSError:
        raise
    except Exception as exc:  # DecodeError, but protobuf/onnx raise several types here
        raise InvalidModelError(f"not an ONNX model: cannot parse protobuf ({exc})") from exc
    # Protobuf parses many garbage files into an almost empty ModelProto without complaint.
    if model.ir_version < 1:
        raise InvalidModelError("not an ONNX model: no ir_version")
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise InvalidModelError("not a usable ONNX model: the graph has no nodes")
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:  # ValidationError, but a broken file can raise others
        raise InvalidModelError(f"ONNX checker rejected the model: {exc}") from exc
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not opsets:
        raise InvalidModelError("the model imports no opset of the default ONNX domain")
    return ModelInfo(
        ir_version=model.ir_version,
        opset=max(opsets),
        producer=model.producer_name or None,
        inputs=graph_inputs(model),
        outputs=[_spec(v) for v in model.graph.output],
        op_counts=count_ops(model),
        param_count=param_count(model),
        has_external_data=bool(external_data_files(model, path.parent)),
    )
