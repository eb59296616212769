"""INT8/UINT8 static quantization (weights and activations) calibrated on sample inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import ModelProto

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.graph.analysis import (
    count_ops,
    iter_graphs,
    load_proto,
    tensor_numel,
    weight_bytes,
)
from app.compression.graph.fused_ops import unfuse_contrib_ops
from app.compression.graph.prepare import (
    PER_CHANNEL_MIN_OPSET,
    default_opset,
    prepare_model,
    sort_all_graphs,
)
from app.compression.passes.base import (
    CompressionPass,
    PassContext,
    PassOutcome,
    PassWork,
    register_pass,
)
from app.compression.passes.configs import QuantizeStaticConfig
from app.compression.passes.dequantized_weights import (
    RECURRENT_OPS,
    WeightOnly,
    store_weights_8bit,
)
from app.compression.passes.static_pre_process import pre_process

# Ops of ORT's QOperator format that stand for a quantized node.
_QOPERATOR_EXTRA = ("QGemm", "QAttention", "QEmbedLayerNormalization")


class _Reader:
    """A CalibrationDataReader over a list of feeds (ORT only calls get_next)."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _count_quantized(model: ModelProto, qdq: bool) -> int:
    """Nodes that compute on quantized values (fed by DequantizeLinear, or QLinear ops)."""
    nodes = [n for g in iter_graphs(model.graph) for n in g.node]
    if not qdq:
        return sum(n.op_type.startswith("QLinear") or n.op_type in _QOPERATOR_EXTRA for n in nodes)
    dequantized = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
    return sum(
        n.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and any(i in dequantized for i in n.input)
        for n in nodes
    )


def _per_channel_scales(model: ModelProto) -> int:
    # ORT names every scale "<tensor>_scale"; one with several values is per channel.
    return sum(
        t.name.endswith("_scale") and tensor_numel(t) > 1
        for g in iter_graphs(model.graph)
        for t in g.initializer
    )


def _calibration(
    model: ModelProto, config: QuantizeStaticConfig, context: PassContext
) -> tuple[list[dict[str, np.ndarray]], bool]:
    try:
        return context.sample_feeds(model, config.num_samples)
    except (ValueError, KeyError) as exc:
        raise PassError("calibration_failed", f"no calibration data for this model: {exc}") from exc


def _quantize(
    source: Path,
    output_path: Path,
    feeds: list[dict[str, np.ndarray]],
    config: QuantizeStaticConfig,
    per_channel: bool,
    extra: dict[str, Any],
    big: bool,
    has_subgraphs: bool,
) -> None:
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    qtype = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    qdq = config.format == "qdq"
    try:
        quantize_static(
            source,
            output_path,
            _Reader(feeds),
            quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
            op_types_to_quantize=config.op_types,
            per_channel=per_channel,
            activation_type=qtype[config.activation_type],
            weight_type=qtype[config.weight_type],
            nodes_to_exclude=list(config.nodes_to_exclude),
            use_external_data_format=big,
            calibrate_method=method[config.calibration_method],
            extra_options=extra,
        )
    except Exception as exc:  # ORT raises ValueError/RuntimeError/AssertionError/KeyError here
        # e.g. QOperator fails on subgraphs that read main-graph tensors ("unknown tensors").
        hint = " (format qdq handles If/Loop/Scan models)" if has_subgraphs and not qdq else ""
        raise PassError(
            "quantization_failed", f"onnxruntime's static quantizer failed: {exc}{hint}"
        ) from exc


def _weight_only_warnings(stored: WeightOnly) -> list[str]:
    warnings = []
    if stored.subgraph_nodes:
        warnings.append(
            f"{len(stored.subgraph_nodes)} node(s) inside If/Loop/Scan subgraphs got 8-bit "
            "weights only: calibration cannot see inside subgraphs, so their activations stay "
            "float"
        )
    if stored.recurrent_nodes:
        warnings.append(
            f"{len(stored.recurrent_nodes)} LSTM/GRU node(s) got 8-bit weights only (ORT has "
            "no static LSTM/GRU); quantize_dynamic runs them in int8"
        )
    if stored.left_float:
        warnings.append(
            f"{len(stored.left_float)} weight node(s) inside If/Loop/Scan subgraphs stay float "
            "(see details.subgraph_nodes_left_float)"
        )
    return warnings


def _store_weights_8bit(
    path: Path, big: bool, config: QuantizeStaticConfig, per_channel: bool, opset: int
) -> WeightOnly:
    """8-bit weights where ORT left them float (subgraphs, LSTM/GRU); rewrites the output."""
    model = onnx.load(str(path))
    stored = store_weights_8bit(
        model,
        opset=opset,
        per_channel=per_channel,
        weight_type=config.weight_type,
        op_types=config.op_types,
    )
    # Nodes feeding a subgraph's outer-scope reads can land after it: sort for the checker.
    sort_all_graphs(model)
    model_io.save_model(model, path, big)
    return stored


@register_pass
class QuantizeStaticPass(CompressionPass[QuantizeStaticConfig]):
    """Weights and activations to 8 bits, with activation ranges fixed by calibration."""

    keeps_external_data = False

    def transform_files(self, work: PassWork, config: QuantizeStaticConfig) -> PassOutcome:
        qdq = config.format == "qdq"
        before_proto = load_proto(work.input_path)
        before = count_ops(before_proto)
        weights_before = weight_bytes(before_proto)
        big = model_io.writes_external_data(work.input_path, before_proto, keep_external=False)
        del before_proto

        model = onnx.load(str(work.input_path))
        # optimize_graph (level extended) leaves FusedConv/FusedGemm, which ORT does not quantize.
        unfused = unfuse_contrib_ops(model, default_opset(model))
        # Per-channel QuantizeLinear/DequantizeLinear (their `axis`) needs opset 13.
        wanted = PER_CHANNEL_MIN_OPSET if config.per_channel and qdq else None
        model, prep = prepare_model(model, min_opset=wanted)
        if unfused:
            prep.notes.insert(0, f"split {unfused} FusedConv/FusedGemm node(s) into plain ops")
        warnings = list(prep.warnings)
        per_channel = config.per_channel
        if wanted is not None and prep.opset < wanted:
            per_channel = False
            warnings.append(f"quantized per tensor: opset {prep.opset} has no per-channel QDQ")
        has_subgraphs = len(list(iter_graphs(model.graph))) > 1
        feeds, synthetic = _calibration(model, config, work.context)
        if synthetic:
            warnings.append(
                f"calibrated on {len(feeds)} synthetic sample(s) (random inputs from the input "
                "spec): activation ranges are a weaker guess than real data; pass a "
                "calibration dataset for better accuracy"
            )
        # No CalibMaxIntermediateOutputs: ORT 1.32 drops (not merges) each full batch of them.
        # ORT drops Relu/Clip after a quantized output even when an If/Loop body reads the
        # un-quantized tensor by name, which then sees pre-activation values: keep them there.
        extra: dict[str, Any] = {"QDQKeepRemovableActivations": has_subgraphs}
        with work.scratch_dir(".qstat-") as tmp:
            staged = Path(tmp) / "model.onnx"
            onnx.save_model(model, str(staged), save_as_external_data=big, location="model.data")
            del model
            pre = pre_process(staged, Path(tmp), big)
            warnings += pre.warnings()
            source = pre.source
            names = {n.name for g in iter_graphs(load_proto(source).graph) for n in g.node}
            unknown = sorted(set(config.nodes_to_exclude) - names)
            if unknown:
                warnings.append(f"nodes_to_exclude names no node of the model: {unknown}")
            _quantize(
                source, work.output_path, feeds, config, per_channel, extra, big, has_subgraphs
            )
        stored = WeightOnly()
        if has_subgraphs or any(before.get(op) for op in RECURRENT_OPS):
            stored = _store_weights_8bit(work.output_path, big, config, per_channel, prep.opset)
        warnings += _weight_only_warnings(stored)
        # Checked here, not by run(): a model that does not load fails as such, even when
        # nothing was quantized either.
        model_io.require_loadable(work.output_path, "quantized")
        after_proto = load_proto(work.output_path)
        quantized = _count_quantized(after_proto, qdq)
        if quantized == 0:
            raise PassError(
                "nothing_to_quantize",
                "no node could be quantized statically (its ops: "
                f"{', '.join(f'{k}x{v}' for k, v in before.items())}); check op_types and "
                "nodes_to_exclude",
            )
        after = count_ops(after_proto)
        weights_after = weight_bytes(after_proto)
        return PassOutcome(
            summary=f"Quantized {quantized} node(s) statically ({config.format}, "
            f"{config.activation_type} activations, {config.weight_type} weights); weights "
            f"{weights_before / 1e6:.2f} MB -> {weights_after / 1e6:.2f} MB.",
            details={
                "nodes_quantized": quantized,
                "quantize_linear": after.get("QuantizeLinear", 0),
                "dequantize_linear": after.get("DequantizeLinear", 0),
                "per_channel": per_channel,
                "per_channel_scales": _per_channel_scales(after_proto),
                "calibration": {
                    "source": "synthetic" if synthetic else "dataset",
                    "samples": len(feeds),
                    "method": config.calibration_method,
                },
                "op_counts_before": before,
                "op_counts_after": after,
                "weight_bytes_before": weights_before,
                "weight_bytes_after": weights_after,
                "weight_only_nodes": stored.subgraph_nodes + stored.recurrent_nodes,
                "subgraph_nodes_left_float": stored.left_float,
                "pre_process": pre.details(),
                "prepared": prep.notes,
            },
            warnings=warnings,
        )
