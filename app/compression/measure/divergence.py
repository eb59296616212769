"""After a pass: does its output still compute what its input did on the calibration data?

A pass that keeps a cosine similarity of 0.99 compresses a model; one that leaves 0.4 (or a
classifier that agrees on 2% of its top-1 classes) has broken it. The check runs both models on
the same feeds and, when the outputs collapse, finds the nodes where the error appears.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from pydantic import BaseModel, Field

from app.compression.graph.analysis import load_proto
from app.compression.measure import fidelity
from app.compression.measure.metrics_math import ErrorAccumulator
from app.compression.measure.quant_error import ort_numpy_type, session_with_outputs

# Floors well below what each pass keeps on a healthy model (int8 keeps a cosine above 0.99,
# 50% magnitude pruning about 0.9 even on random weights): under them the pass has broken it.
_COSINE_FLOOR = {"optimize_graph": 0.99, "convert_fp16": 0.98}
_DEFAULT_COSINE_FLOOR = 0.8
_TOP1_FLOOR = {"optimize_graph": 0.95, "convert_fp16": 0.9}
_DEFAULT_TOP1_FLOOR = 0.5
WORST_NODES = 3
# Every intermediate of both models is kept per sample in the node search: a few suffice.
NODE_SEARCH_SAMPLES = 4


class NodeDrift(BaseModel):
    """A node of the input model and how much error its output gains in the pass's output."""

    node: str = Field(description="The node's name in the pass's input model.")
    op_type: str
    relative_error: float = Field(description="||input's - output's|| / ||input's|| there.")
    added_error: float = Field(description="relative_error minus the worst of its inputs'.")


class OutputCheck(BaseModel):
    """The pass's output against its input, run on the same calibration feeds."""

    checked: bool = True
    samples: int
    synthetic_inputs: bool
    cosine_similarity: float | None = None
    top1_agreement: float | None = Field(
        default=None, description="Classifier outputs on calibration data only."
    )
    cosine_floor: float
    top1_floor: float
    collapsed: bool = Field(description="Below a floor: the pass broke the model.")
    worst_nodes: list[NodeDrift] = Field(default_factory=list)


def _session(path: Path) -> Any:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _run(path: Path, feeds: list[dict[str, np.ndarray]]) -> fidelity.Outputs:
    # One model loaded at a time: the check must not double what the pass itself needed.
    session = _session(path)
    [outputs], _, _ = fidelity.run_outputs_within(
        [session], feeds, None, [_dtypes(session)], deadline=math.inf
    )
    return outputs


def _dtypes(session: Any) -> dict[str, str]:
    return {i.name: ort_numpy_type(i.type).name for i in session.get_inputs()}


def check_outputs(
    pass_type: str, before: Path, after: Path, feeds: list[dict[str, np.ndarray]], synthetic: bool
) -> OutputCheck | None:
    """Cosine and top-1 agreement of after's outputs against before's; None if incomparable."""
    outputs = [_run(path, feeds) for path in (before, after)]
    result, _ = fidelity.compare_outputs(outputs[0], outputs[1], "dataset")
    if result is None:
        return None
    cosine_floor = _COSINE_FLOOR.get(pass_type, _DEFAULT_COSINE_FLOOR)
    top1_floor = _TOP1_FLOOR.get(pass_type, _DEFAULT_TOP1_FLOOR)
    # Drawn inputs often land on one class for every sample: their top-1 says little.
    top1 = None if synthetic else result.top1_agreement
    collapsed = result.cosine_similarity < cosine_floor or (top1 is not None and top1 < top1_floor)
    check = OutputCheck(
        samples=len(feeds),
        synthetic_inputs=synthetic,
        cosine_similarity=result.cosine_similarity,
        top1_agreement=top1,
        cosine_floor=cosine_floor,
        top1_floor=top1_floor,
        collapsed=collapsed,
    )
    if collapsed:
        check.worst_nodes = worst_nodes(before, after, feeds[:NODE_SEARCH_SAMPLES])
    return check


def collapse_warning(pass_type: str, check: OutputCheck) -> str | None:
    """The warning for a collapsed output, naming the metric, its value and the worst nodes."""
    if not check.collapsed:
        return None
    data = "synthetic inputs" if check.synthetic_inputs else "the calibration data"
    said = []
    if check.top1_agreement is not None and check.top1_agreement < check.top1_floor:
        said.append(
            f"top-1 agreement {check.top1_agreement:.3f} (usually above {check.top1_floor})"
        )
    if check.cosine_similarity is not None and check.cosine_similarity < check.cosine_floor:
        said.append(
            f"cosine similarity {check.cosine_similarity:.3f} (usually above {check.cosine_floor})"
        )
    nodes = ", ".join(
        f"{n.node} ({n.op_type}, relative error {n.relative_error:.3g})" for n in check.worst_nodes
    )
    where = f"; worst nodes: {nodes}" if nodes else ""
    return (
        f"{pass_type} broke the model's outputs on {data} ({check.samples} samples): "
        f"{' and '.join(said)}{where}"
    )


def worst_nodes(
    before: Path, after: Path, feeds: list[dict[str, np.ndarray]], limit: int = WORST_NODES
) -> list[NodeDrift]:
    """The nodes of `before` whose outputs gain the most error in `after`, worst first.

    Compares every main-graph tensor both models compute under the same name; a node's share
    is its output's error minus the worst error reaching it, so the blame lands where the
    error starts, not on every node downstream of it.
    """
    original, compressed = load_proto(before), load_proto(after)
    produced_after = {out for node in compressed.graph.node for out in node.output}
    names = [
        out for node in original.graph.node for out in node.output if out and out in produced_after
    ]
    if not names:
        return []
    sessions = (
        session_with_outputs(before, original, names, 1),
        session_with_outputs(after, compressed, names, 1),
    )
    errors = _tensor_errors(sessions, feeds, names)
    reaching: dict[str, float] = {}  # the worst error arriving in each tensor of `before`
    drifts = []
    for node in original.graph.node:
        incoming = max((reaching.get(name, 0.0) for name in node.input), default=0.0)
        for out in node.output:
            reaching[out] = errors.get(out, incoming)
        measured = [errors[out] for out in node.output if out in errors]
        if measured and max(measured) > incoming:
            worst = max(measured)
            drifts.append(
                NodeDrift(
                    node=node.name or node.output[0],
                    op_type=node.op_type,
                    relative_error=worst,
                    added_error=worst - incoming,
                )
            )
    drifts.sort(key=lambda d: d.added_error, reverse=True)
    return drifts[:limit]


def _tensor_errors(
    sessions: tuple[Any, Any], feeds: list[dict[str, np.ndarray]], names: list[str]
) -> dict[str, float]:
    """Relative L2 error per tensor over all feeds; tensors that change shape are left out."""
    accumulators = {name: ErrorAccumulator() for name in names}
    dtypes = [_dtypes(s) for s in sessions]
    for feed in feeds:
        ref, new = (
            dict(zip(names, s.run(names, fidelity.as_feed(feed, d)), strict=True))
            for s, d in zip(sessions, dtypes, strict=True)
        )
        for name, acc in accumulators.items():
            a, b = np.asarray(ref[name]), np.asarray(new[name])
            if a.dtype.kind == "f" and b.dtype.kind == "f" and a.shape == b.shape:
                acc.add(a, b)
    errors = {}
    for name, acc in accumulators.items():
        if acc.count:
            error = acc.result().relative_error
            # None: a zero reference that the pass made nonzero, as far off as it gets.
            errors[name] = math.inf if error is None else error
    return errors
