"""Where quantization hurts: per-tensor weight error and per-node output error."""

from __future__ import annotations

import math
import tempfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import ModelProto, NodeProto, TensorProto, numpy_helper

from app.compression.graph.analysis import external_data_files, load_proto
from app.compression.measure.latency import effective_threads
from app.compression.measure.metrics import NodeSensitivityRow, WeightErrorReport, WeightErrorRow
from app.compression.measure.metrics_math import ErrorAccumulator
from app.compression.measure.weights import (
    dequantized_weights,
    effective_weights,
    match_original,
    quant_params,
)

# Initializer types that only a compression pass puts in a model's weights.
_COMPRESSED_TYPES = {
    TensorProto.INT8,
    TensorProto.UINT8,
    TensorProto.INT4,
    TensorProto.UINT4,
    TensorProto.FLOAT16,
    TensorProto.BFLOAT16,
}
# Nodes that only reshape or decode a weight; the node consuming their output is the quantized one.
_WEIGHT_PLUMBING = {"DequantizeLinear", "Cast", "Transpose", "Reshape", "Squeeze", "Unsqueeze"}


def weight_error_report(original_path: Path, compressed_path: Path) -> WeightErrorReport:
    """Mean/max |w - dequant(w)| overall and per tensor (worst relative error first)."""
    return weight_report_from_models(onnx.load(str(original_path)), onnx.load(str(compressed_path)))


def weight_report_from_models(original: ModelProto, compressed: ModelProto) -> WeightErrorReport:
    """weight_error_report on loaded ModelProtos (weights included)."""
    originals = {n: w.values for n, w in effective_weights(original).items()}
    rows: list[WeightErrorRow] = []
    unmatched: list[str] = []
    abs_sum, count, abs_max = 0.0, 0, 0.0
    for weight in dequantized_weights(compressed):
        match = match_original(weight, originals)
        if match is None:
            unmatched.append(weight.name)
            continue
        reference = match.original.astype(np.float64)
        diff = np.abs(reference - match.values)
        norm = float(np.linalg.norm(reference))
        rows.append(
            WeightErrorRow(
                name=match.name,
                stored_as=weight.name,
                kind=weight.kind,
                shape=list(match.original.shape),
                mean_abs=float(diff.mean()) if diff.size else 0.0,
                max_abs=float(diff.max()) if diff.size else 0.0,
                relative_error=float(np.linalg.norm(diff)) / norm if norm else 0.0,
            )
        )
        abs_sum, count = abs_sum + float(diff.sum()), count + diff.size
        abs_max = max(abs_max, rows[-1].max_abs)
    rows.sort(key=lambda r: r.relative_error, reverse=True)
    report = WeightErrorReport(tensors=rows, unmatched=sorted(unmatched))
    if count:  # no matched tensor, no number
        report.mean_abs, report.max_abs = abs_sum / count, abs_max
    return report


def _quantized_nodes(model: ModelProto) -> list[NodeProto]:
    """Compute nodes that consume a compressed weight, directly or through decoding nodes."""
    inits = {t.name: t for t in model.graph.initializer}
    params = quant_params(model)
    derived = {n for n, t in inits.items() if t.data_type in _COMPRESSED_TYPES and n not in params}
    found = []
    for node in model.graph.node:  # topological order: decoders come before their consumers
        ins = [i for i in node.input if i]
        # Gather(codebook, indices): decoding when the table is stored, a lookup otherwise.
        codebook = node.op_type == "Gather" and ins[0] in inits and ins[1] in derived | set(inits)
        if (node.op_type in _WEIGHT_PLUMBING and ins and ins[0] in derived) or codebook:
            derived.update(node.output)
        elif any(i in derived for i in ins):
            found.append(node)
    return found


@dataclass
class _Probe:
    """A quantized node and the tensors compared for it."""

    node: NodeProto
    compressed: str  # tensor read from the compressed model
    original: str  # the same tensor in the original model
    scale: np.ndarray | None = None  # set when `compressed` is quantized (QOperator format)
    zero_point: np.ndarray | None = None


def _consumers(model: ModelProto) -> dict[str, list[NodeProto]]:
    found: dict[str, list[NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            found.setdefault(name, []).append(node)
    return found


def _qparams(
    inits: dict[str, TensorProto], base: str, base_dir: Path
) -> tuple[np.ndarray, np.ndarray | None]:
    scale = numpy_helper.to_array(inits[f"{base}_scale"], str(base_dir)).astype(np.float64)
    zp = inits.get(f"{base}_zero_point")
    return scale, None if zp is None else numpy_helper.to_array(zp, str(base_dir)).astype(float)


def _probe(
    node: NodeProto, model: ModelProto, original: ModelProto, base_dir: Path
) -> _Probe | None:
    """The first tensor downstream of `node` that the original also computes."""
    users, original_users = _consumers(model), _consumers(original)
    values = {out for n in original.graph.node for out in n.output}
    inits = {t.name: t for t in model.graph.initializer}
    queue, seen = deque((name, 0) for name in node.output), set()
    while queue:
        name, depth = queue.popleft()
        if name in seen or depth > 8:
            continue
        seen.add(name)
        if name in values:
            # A QDQ model clamps and rounds at Q -> DQ (e.g. a Relu folded into Q): compare there.
            for q in (n for n in users.get(name, []) if n.op_type == "QuantizeLinear"):
                for dq in (
                    n for n in users.get(q.output[0], []) if n.op_type == "DequantizeLinear"
                ):
                    return _Probe(node, dq.output[0], name)
            return _Probe(node, name, name)
        base = name.removesuffix("_quantized")
        if base in values and f"{base}_scale" in inits:
            # ORT's QOperator format: "<tensor>_quantized" with "<tensor>_scale"/"_zero_point".
            # It folds a following Relu/Clip into the output range but keeps the pre-Relu name.
            after = original_users.get(base, [])
            folded = len(after) == 1 and after[0].op_type in ("Relu", "Clip")
            if folded and not any(n.op_type in ("Relu", "Clip") for n in users.get(name, [])):
                return _Probe(node, name, after[0].output[0], *_qparams(inits, base, base_dir))
            return _Probe(node, name, base, *_qparams(inits, base, base_dir))
        for nxt in users.get(name, []):
            queue.extend((out, depth + 1) for out in nxt.output)
    return None


def session_with_outputs(path: Path, model: ModelProto, names: list[str], threads: int) -> Any:
    """A session of `model` (loaded from `path`) that also outputs the tensors in `names`."""
    present = {o.name for o in model.graph.output}
    extra = [onnx.ValueInfoProto(name=n) for n in dict.fromkeys(names) if n not in present]
    model.graph.output.extend(extra)
    options = ort.SessionOptions()
    options.intra_op_num_threads = effective_threads(threads)
    # Basic level: no QDQ or layer fusions, so exposing intermediates changes no kernel choice.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    providers = ["CPUExecutionProvider"]
    if not external_data_files(model, path.parent):
        return ort.InferenceSession(model.SerializeToString(), options, providers=providers)
    # External data resolves relative to the model file: write the copy next to the original.
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".onnx") as tmp:
        onnx.save(model, tmp.name)
        return ort.InferenceSession(tmp.name, options, providers=providers)


def _named_outputs(session: Any, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def ort_numpy_type(ort_type: str) -> np.dtype:
    """The numpy dtype of an onnxruntime type name such as "tensor(float16)"."""
    # "tensor(float16)" -> float16; ORT names its types after numpy's, except "float" and "double".
    name = ort_type.removeprefix("tensor(").removesuffix(")")
    return np.dtype({"float": "float32", "double": "float64"}.get(name, name))


def node_sensitivity(
    original_path: Path,
    compressed_path: Path,
    samples: list[dict[str, np.ndarray]],
    *,
    threads: int = 1,
) -> list[NodeSensitivityRow]:
    """Error of each quantized node's output against the original's same tensor, worst first.

    The error at a node includes what earlier nodes contributed: it is what that layer sees.
    """
    original_path, compressed_path = Path(original_path), Path(compressed_path)
    original, compressed = load_proto(original_path), load_proto(compressed_path)
    probes = [
        probe
        for node in _quantized_nodes(compressed)
        if (probe := _probe(node, compressed, original, compressed_path.parent)) is not None
    ]
    if not probes or not samples:
        return []
    sessions = (
        session_with_outputs(original_path, original, [p.original for p in probes], threads),
        session_with_outputs(compressed_path, compressed, [p.compressed for p in probes], threads),
    )
    stats = [ErrorAccumulator() for _ in probes]
    dtypes = [{i.name: ort_numpy_type(i.type) for i in s.get_inputs()} for s in sessions]
    for sample in samples:
        out_a, out_b = (
            _named_outputs(
                s, {k: np.asarray(v).astype(d[k], copy=False) for k, v in sample.items()}
            )
            for s, d in zip(sessions, dtypes, strict=True)
        )
        for probe, acc in zip(probes, stats, strict=True):
            ref, new = out_a[probe.original], out_b[probe.compressed].astype(np.float64)
            if probe.scale is not None:
                new = (new - (0.0 if probe.zero_point is None else probe.zero_point)) * probe.scale
            if np.shape(ref) == np.shape(new):
                acc.add(ref, new)
    rows = [
        NodeSensitivityRow(
            node=probe.node.name,
            op_type=probe.node.op_type,
            tensor=probe.original,
            compared_with=probe.compressed,
            **dict(acc.result()),
        )
        for probe, acc in zip(probes, stats, strict=True)
        if acc.count
    ]
    rows.sort(
        key=lambda r: math.inf if r.relative_error is None else r.relative_error, reverse=True
    )
    return rows
