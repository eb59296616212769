"""Keeps float16 conversion honest: nodes that overflow or drift on sample inputs stay float32."""

from __future__ import annotations

from collections.abc import Callable, Set
from typing import Any

import numpy as np
from onnx import ModelProto, NodeProto, TensorProto

from app.compression.errors import PassError
from app.compression.graph.analysis import iter_graphs
from app.compression.graph.prepare import consumed_names
from app.compression.passes.base import PassContext

FP16_MAX = 65504.0
# Sample feeds for the check: few, because each round runs both models on them.
PROBE_SAMPLES = 2
# Relative L2 error of an output above which the float16 model counts as broken; healthy
# conversions stay near 1e-3, overflow and cancellation give O(1).
OUTPUT_TOLERANCE = 0.05
# Rounds of "keep the next diverging node in float32" before giving up.
MAX_SEARCH_ROUNDS = 8

Feeds = list[dict[str, np.ndarray]]
Activations = list[dict[str, np.ndarray]]
Converter = Callable[[set[str]], ModelProto]


def _run_all(model: ModelProto, feeds: Feeds) -> tuple[Activations, list[str]]:
    """Every float tensor of the main graph per feed, and the graph's output names."""
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    import onnxruntime as ort

    outputs = [o.name for o in model.graph.output]
    probe = model.__class__()
    probe.CopyFrom(model)
    # ORT accepts untyped graph outputs, so no shape inference is needed to expose them all.
    known = set(outputs)
    for node in probe.graph.node:
        for name in node.output:
            if name and name not in known:
                probe.graph.output.add().name = name
                known.add(name)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        probe.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    dtypes = {i.name: "float16" if "float16" in i.type else None for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    results: Activations = []
    for feed in feeds:
        cast = {k: v.astype(dtypes[k]) if dtypes.get(k) else v for k, v in feed.items()}
        values = session.run(names, cast)
        results.append(
            {
                n: v
                for n, v in zip(names, values, strict=True)
                if isinstance(v, np.ndarray) and v.dtype.kind == "f"
            }
        )
    return results, outputs


def _rel_error(ref: np.ndarray, new: np.ndarray) -> float:
    """Relative L2 error; inf when new is non-finite where ref is finite."""
    ref64, new64 = ref.astype(np.float64), new.astype(np.float64)
    if np.shape(ref64) != np.shape(new64):
        return float("inf")
    finite = np.isfinite(ref64)
    if not np.isfinite(new64[finite]).all():
        return float("inf")
    scale = max(float(np.linalg.norm(ref64[finite])), 1e-6)
    return float(np.linalg.norm(ref64[finite] - new64[finite]) / scale)


def _out_of_range_nodes(model: ModelProto, ref: Activations) -> set[str]:
    """Nodes that produce or read a value beyond the float16 range on the sample feeds."""
    big = {
        name
        for acts in ref
        for name, value in acts.items()
        if np.abs(value[np.isfinite(value)], dtype=np.float64).max(initial=0) > FP16_MAX
    }
    return {
        node.name
        for node in model.graph.node
        if big & (set(node.output) | set(consumed_names(node)))
    }


def _worst_output_error(ref: Activations, new: Activations, outputs: list[str]) -> float:
    return max(
        (_rel_error(r[n], w[n]) for r, w in zip(ref, new, strict=True) for n in outputs if n in r),
        default=0.0,
    )


def _next_to_block(
    converted: ModelProto, ref: Activations, new: Activations, names: set[str], blocked: set[str]
) -> str | None:
    """The node to keep in float32 next: the earliest one whose output drifts too far."""
    producer = {out: n for n in converted.graph.node for out in n.output}

    def original(node: NodeProto | None) -> NodeProto | None:
        # A Cast the converter added stands for the node that produced its input.
        while node is not None and node.name not in names and node.op_type == "Cast":
            node = producer.get(node.input[0])
        return node if node is not None and node.name in names else None

    for node in converted.graph.node:
        drift = max(
            (
                _rel_error(r[name], w[name])
                for name in node.output
                for r, w in zip(ref, new, strict=True)
                if name in r and name in w
            ),
            default=0.0,
        )
        source = original(node) if drift > OUTPUT_TOLERANCE else None
        if source is None:
            continue
        # Kept in float32 and still off: its inputs arrive degraded (e.g. cancellation in a
        # Sub of two large, nearly equal values), so walk up to the nearest float16 producer.
        frontier, seen = [source], set()
        while frontier:
            current = frontier.pop(0)
            if current.name not in blocked:
                return current.name
            seen.add(current.name)
            upstream = (original(producer.get(name)) for name in current.input)
            frontier += [n for n in upstream if n is not None and n.name not in seen]
    return None


# Ops that read or write quantized integers, or whose scales onnxruntime wants in float32.
_QUANT_OPS = {
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLinear",
    "MatMulInteger",
    "ConvInteger",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "DynamicQuantizeLSTM",
    "QGemm",
    "QAttention",
}
# What ORT writes after an integer MatMul/Conv to rescale it to float: Cast, then Mul.
_RESCALE_TAIL = {"Cast", "Mul"}


def _is_quant_op(node: NodeProto) -> bool:
    return node.op_type in _QUANT_OPS or node.op_type.startswith("QLinear")


def quantized_islands(model: ModelProto) -> set[str]:
    """Names of the quantized nodes and their float neighbours, in every graph.

    A Q/DQ island is DequantizeLinear -> compute -> QuantizeLinear: in float16 the scales no
    longer type-check, and a compute node in float16 between them is never fused into an
    integer kernel. The float nodes that feed a quantized node, and those that read one
    (through ORT's Cast/Mul rescaling tail), stay float32 with it.
    """
    names: set[str] = set()
    for graph in iter_graphs(model.graph):
        producer = {out: node for node in graph.node for out in node.output if out}
        readers: dict[str, list[NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                readers.setdefault(name, []).append(node)
        for node in graph.node:
            if not _is_quant_op(node):
                continue
            names.add(node.name)
            names.update(producer[i].name for i in node.input if i in producer)
            frontier = [r for out in node.output for r in readers.get(out, [])]
            while frontier:
                reader = frontier.pop()
                if reader.name in names:
                    continue
                names.add(reader.name)
                if reader.op_type in _RESCALE_TAIL:
                    frontier += [r for out in reader.output for r in readers.get(out, [])]
    return names


def drop_cast_roundtrips(model: ModelProto) -> int:
    """Remove float32 -> float16 -> float32 Cast pairs between two nodes kept in float32."""
    # The converter casts every blocked node's output to float16 and back for the next
    # blocked node (or float32 graph output): a lossy round trip that overflows exactly where
    # blocking was meant to help.
    graph = model.graph
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*graph.input, *graph.value_info, *graph.output]
    }
    by_output = {n.output[0]: n for n in graph.node if n.op_type == "Cast" and n.output}
    keep = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    for node in graph.node:
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        first = by_output.get(node.input[0]) if node.op_type == "Cast" else None
        if to != TensorProto.FLOAT or first is None:
            continue
        first_to = next((a.i for a in first.attribute if a.name == "to"), None)
        if first_to != TensorProto.FLOAT16 or types.get(first.input[0]) != TensorProto.FLOAT:
            continue
        if node.output[0] in keep:
            node.input[0] = first.input[0]  # a float32 -> float32 Cast: keeps the output name
        else:
            rename[node.output[0]] = first.input[0]
    for sub in iter_graphs(graph):
        for node in sub.node:
            for i, name in enumerate(node.input):
                if name in rename:
                    node.input[i] = rename[name]
    kept = [n for n in graph.node if not (n.op_type == "Cast" and n.output[0] in rename)]
    used = {name for n in kept for name in consumed_names(n)} | keep
    kept = [n for n in kept if not (n.op_type == "Cast" and n.output[0] not in used)]
    removed = len(graph.node) - len(kept)
    graph.ClearField("node")
    graph.node.extend(kept)
    return removed


def guarded_convert(
    model: ModelProto, convert: Converter, context: PassContext, kept: Set[str] = frozenset()
) -> tuple[ModelProto, dict[str, Any], list[str]]:
    """Convert, keeping in float32 the nodes that overflow or drift on sample inputs.

    `kept` are nodes `convert` keeps in float32 anyway: the search walks past them.
    """
    warnings: list[str] = []
    try:
        feeds, synthetic = context.sample_feeds(model, PROBE_SAMPLES)
        ref, outputs = _run_all(model, feeds)
    except Exception as exc:  # inputs we cannot synthesize, or a model ORT cannot run in fp32
        warnings.append(f"float16 overflow check skipped: {exc}")
        return convert(set()), {"checked": False}, warnings
    names = {n.name for n in model.graph.node}
    # Values beyond ±65504 become inf in float16 on any device: keep their producers and
    # consumers in float32 up front (CPU kernels often compute in float32 and hide this).
    blocked = _out_of_range_nodes(model, ref) - kept
    by_range = sorted(blocked)
    converted = convert(blocked)
    new, _ = _run_all(converted, feeds)
    error = _worst_output_error(ref, new, outputs)
    rounds = 0
    while error > OUTPUT_TOLERANCE and rounds < MAX_SEARCH_ROUNDS:
        culprit = _next_to_block(converted, ref, new, names, blocked | kept)
        if culprit is None:
            break
        blocked.add(culprit)
        rounds += 1
        converted = convert(blocked)
        new, _ = _run_all(converted, feeds)
        error = _worst_output_error(ref, new, outputs)
    if error > OUTPUT_TOLERANCE:
        raise PassError(
            "fp16_inaccurate",
            f"the float16 model stays off by {error:.3g} (relative L2 error of the outputs) even "
            f"with {len(blocked)} node(s) kept in float32; keep more op types in float32 with "
            "op_block_list, or use a quantization pass instead.",
        )
    if blocked:
        warnings.append(
            f"kept {len(blocked)} node(s) in float32 because float16 overflowed or drifted "
            f"there on sample inputs: {sorted(blocked)}"
        )
    check = {
        "checked": True,
        "samples": len(feeds),
        "synthetic_inputs": synthetic,
        "max_relative_error": round(error, 6),
        "nodes_out_of_range": by_range,
        "nodes_found_by_search": sorted(blocked - set(by_range)),
    }
    return converted, check, warnings
