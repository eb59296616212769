"""Structured pruning: remove whole output channels / hidden units and their consumers' inputs."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto, numpy_helper

from app.compression.errors import PassError
from app.compression.graph.analysis import iter_graphs, load_proto, model_size_bytes, param_count
from app.compression.graph.model_io import save_model
from app.compression.graph.prepare import prepare_model
from app.compression.passes.base import (
    PassContext,
    PassOutcome,
    PassWork,
    ReshapingPass,
    register_pass,
)
from app.compression.passes.channel_graph import ChannelTracer, Space, node_label, shape_map
from app.compression.passes.configs import PruneChannelsConfig


def _keep(scores: np.ndarray, remove: int) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")  # stable: ties keep the lower channel index
    return np.sort(order[: len(scores) - remove])


def _weight_scores(space: Space, arrays: dict[str, np.ndarray], criterion: str) -> np.ndarray:
    total = np.zeros(space.channels or 0)
    for _, weight, axis in space.producers:
        rows = np.moveaxis(arrays[weight], axis, 0).reshape(len(total), -1).astype(np.float64)
        norms = np.abs(rows).sum(1) if criterion == "l1" else np.sqrt((rows**2).sum(1))
        # Tied layers vote with equal weight, whatever the scale of their weights.
        total += norms / (norms.mean() or 1.0)
    return total


def _activation_scores(
    model: ModelProto,
    inferred: ModelProto,
    watched: list[tuple[Space, list[str]]],
    scratch: Path | None,
    config: PruneChannelsConfig,
    context: PassContext,
) -> tuple[list[np.ndarray], bool]:
    """Mean |activation| per channel of the watched tensors, over calibration samples."""
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    import onnxruntime as ort

    wanted = list(dict.fromkeys(n for _, names in watched for n in names))
    infos = {v.name: v for v in [*inferred.graph.value_info, *inferred.graph.output]}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    existing = {o.name for o in probe.graph.output}
    probe.graph.output.extend(infos[n] for n in wanted if n not in existing)
    providers = ["CPUExecutionProvider"]
    if scratch is not None:  # past 2 GiB the probe only loads from a file with external data
        save_model(probe, scratch / "probe.onnx", big=True)
        session = ort.InferenceSession(str(scratch / "probe.onnx"), providers=providers)
    else:
        session = ort.InferenceSession(probe.SerializeToString(), providers=providers)
    del probe
    feeds, synthetic = context.sample_feeds(model, config.num_samples)
    where = {n: space for space, names in watched for n in names}
    sums = {n: np.zeros(where[n].channels or 0) for n in wanted}
    for feed in feeds:
        for name, value in zip(wanted, session.run(wanted, feed), strict=True):
            axis, block = where[name].tensors[name]
            moved = np.abs(np.moveaxis(np.asarray(value, np.float64), axis, -1))
            sums[name] += moved.reshape(-1, len(sums[name]), block).mean(axis=(0, 2))
    # Each watched tensor votes with equal weight, whatever its scale.
    scores = [
        sum((sums[n] / (sums[n].mean() or 1.0) for n in names), np.zeros(space.channels or 0))
        for space, names in watched
    ]
    return scores, synthetic


def _inferred_shapes(model: ModelProto, work: PassWork) -> ModelProto:
    """The prepared model with inferred shapes (only its protobuf, for external-data models)."""
    if not work.external_data:
        return onnx.shape_inference.infer_shapes(model)
    # Shape inference serializes the model: past 2 GiB only a copy without weights fits. The
    # folds it cannot compute without the weights keep their shapes as inferred values.
    proto, _ = prepare_model(load_proto(work.input_path))
    return onnx.shape_inference.infer_shapes(proto)


def _io_channels(tracer: ChannelTracer, index: int, dims: tuple[int, ...]) -> tuple[int, int]:
    node = tracer.nodes[index]
    if node.op_type == "Conv":
        return dims[0], dims[1] * tracer.attr(node, "group", 1)
    if node.op_type == "Gemm" and tracer.attr(node, "transB", 0):
        return dims[0], dims[1]
    return dims[1], dims[0]


def _layer_rows(
    tracer: ChannelTracer, before: dict[str, tuple[int, ...]], arrays: dict[str, np.ndarray]
) -> list[dict[str, Any]]:
    rows = []
    for i, node in enumerate(tracer.nodes):
        if tracer.layer_kind(i) not in ("layer", "depthwise"):
            continue
        names = [n for n in node.input[1:3] if n in before]
        old = [before[n] for n in names]
        new = [arrays[n].shape if n in arrays else before[n] for n in names]
        if old == new:
            continue
        out_before, in_before = _io_channels(tracer, i, old[0])
        out_after, in_after = _io_channels(tracer, i, tuple(new[0]))
        rows.append(
            {
                "node": node_label(node, i),
                "op_type": node.op_type,
                "channels_before": out_before,
                "channels_after": out_after,
                "input_channels_before": in_before,
                "input_channels_after": in_after,
                "params_before": sum(math.prod(s) for s in old),
                "params_after": sum(math.prod(s) for s in new),
            }
        )
    return rows


def _apply(
    tracer: ChannelTracer, space: Space, keep: np.ndarray, arrays: dict[str, np.ndarray]
) -> None:
    """Slice every tensor of the space to the kept channels, in place in `arrays`."""

    def current(name: str) -> np.ndarray:
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(tracer.inits[name])
        return arrays[name]

    for name, axis, block in space.slices:
        index = (keep[:, None] * block + np.arange(block)).ravel()
        arrays[name] = np.take(current(name), index, axis=axis)
    for name, position, block in space.reshapes:
        target = current(name).copy()
        target[position] = len(keep) * block
        arrays[name] = target
    for i in space.groups:
        for attr in tracer.nodes[i].attribute:
            if attr.name == "group":
                attr.i = len(keep)


_WHY_NOT = {
    None: "its weight is not a constant initializer (2-D for Gemm/MatMul)",
    "grouped": "grouped convolution ties its input and output channels",
    "depthwise": "depthwise convolution: shrinks only with the layer that feeds it",
}


def _select(
    tracer: ChannelTracer, model: ModelProto, config: PruneChannelsConfig
) -> tuple[list[tuple[Space, int]], dict[str, str]]:
    """The channel spaces to prune (with how many channels to remove) and why others are left."""
    skipped: dict[str, str] = {}
    for graph in list(iter_graphs(model.graph))[1:]:
        for j, node in enumerate(graph.node):
            if node.op_type in config.op_types:
                skipped[node_label(node, j)] = "inside a subgraph (If/Loop/Scan): not pruned"
    prunable: list[tuple[Space, int]] = []
    claimed: set[int] = set()
    unprunable: dict[int, str] = {}
    for i, node in enumerate(tracer.nodes):
        kind = tracer.layer_kind(i)
        if node.op_type not in config.op_types or i in claimed:
            continue
        if kind != "layer":
            unprunable[i] = _WHY_NOT[kind]
            continue
        space = tracer.trace(i)
        claimed |= {p for p, _, _ in space.producers}
        remove = int(config.ratio * (space.channels or 0))
        reason = space.reasons[0] if space.reasons else None
        if reason is None and remove == 0:
            reason = f"{space.channels} channel(s): ratio {config.ratio} removes none"
        if reason is None:
            prunable.append((space, remove))
            continue
        for p, _, _ in space.producers:
            skipped[node_label(tracer.nodes[p], p)] = reason
    # A depthwise Conv shrinks along with the space it sits in; only report the others.
    carried = {g for space, _ in prunable for g in space.groups}
    for i, why in unprunable.items():
        if i not in carried:
            skipped[node_label(tracer.nodes[i], i)] = why
    return prunable, skipped


@register_pass
class PruneChannelsPass(ReshapingPass[PruneChannelsConfig]):
    """Fewer channels in Conv/Gemm/MatMul layers: fewer parameters and FLOPs, same graph."""

    def transform(
        self, model: ModelProto, config: PruneChannelsConfig, work: PassWork
    ) -> tuple[ModelProto, PassOutcome]:
        warnings: list[str] = []
        inferred = _inferred_shapes(model, work)
        tracer = ChannelTracer(model, shape_map(inferred), list(config.op_types))

        prunable, skipped = _select(tracer, model, config)
        if not prunable:
            listed = "; ".join(f"{name}: {why}" for name, why in list(skipped.items())[:6])
            raise PassError(
                "nothing_to_prune",
                f"no {'/'.join(config.op_types)} layer can lose channels ({listed or 'none'}).",
            )

        if config.criterion == "activation":
            watched = [
                (s, s.sink_inputs or [tracer.nodes[p].output[0] for p, _, _ in s.producers])
                for s, _ in prunable
            ]
            with work.scratch_dir(".prune-") as tmp:
                scores, synthetic = _activation_scores(
                    model,
                    inferred,
                    watched,
                    Path(tmp) if work.external_data else None,
                    config,
                    work.context,
                )
            if synthetic:
                warnings.append(
                    "criterion=activation ran on synthetic inputs (no calibration dataset): "
                    "a weaker guess of channel importance than real data"
                )
        else:
            weights = {
                w: numpy_helper.to_array(tracer.inits[w])
                for s, _ in prunable
                for _, w, _ in s.producers
            }
            scores = [_weight_scores(s, weights, config.criterion) for s, _ in prunable]

        arrays: dict[str, np.ndarray] = {}
        before_shapes = {name: tuple(t.dims) for name, t in tracer.inits.items()}
        params_before = param_count(model)
        for (space, remove), score in zip(prunable, scores, strict=True):
            _apply(tracer, space, _keep(score, remove), arrays)
        layers = _layer_rows(tracer, before_shapes, arrays)
        for name, array in arrays.items():
            tracer.inits[name].CopyFrom(numpy_helper.from_array(array, name))
        # Old shapes of pruned tensors would contradict the new weights: drop, then re-infer.
        model.graph.ClearField("value_info")
        params_after = param_count(model)

        removed = sum(r["channels_before"] - r["channels_after"] for r in layers)
        return model, PassOutcome(
            summary=f"Removed {removed} channel(s) from {len(prunable)} channel group(s); "
            f"parameters {params_before:,} -> {params_after:,}.",
            details={
                "criterion": config.criterion,
                "ratio": config.ratio,
                "params_before": params_before,
                "params_after": params_after,
                "layers": layers,
                "skipped": [{"node": n, "reason": r} for n, r in skipped.items()],
            },
            warnings=warnings,
        )

    def finish(self, work: PassWork, outcome: PassOutcome) -> PassOutcome:
        outcome.details.update(
            size_bytes_before=model_size_bytes(work.input_path),
            size_bytes_after=model_size_bytes(work.output_path),
        )
        return outcome
