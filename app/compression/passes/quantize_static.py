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
from app.compression.graph.prepare import PER_CHANNEL_MIN_OPSET, prepare_model, resave_sorted
from app.compression.passes.base import (
    CompressionPass,
    PassContext,
    PassOutcome,
    PassWork,
    register_pass,
)
from app.compression.passes.configs import QuantizeStaticConfig

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


def _pre_process(staged: Path, target: Path, big: bool, warnings: list[str]) -> Path:
    """ORT's quant_pre_process (shape inference, basic fusions) where it works."""
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(
            staged,
            target,
            save_as_external_data=big,
            all_tensors_to_one_file=True,
            external_data_location=f"{target.name}.data",
        )
    except Exception as exc:  # symbolic shape inference raises many types on exotic graphs
        warnings.append(f"quant_pre_process failed ({exc}); quantized without it")
        return staged
    return target


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


@register_pass
class QuantizeStaticPass(CompressionPass[QuantizeStaticConfig]):
    """Weights and activations to 8 bits, with activation ranges fixed by calibration."""

    type = "quantize_static"
    config_cls = QuantizeStaticConfig
    keeps_external_data = False

    def transform_files(self, work: PassWork, config: QuantizeStaticConfig) -> PassOutcome:
        qdq = config.format == "qdq"
        before_proto = load_proto(work.input_path)
        before = count_ops(before_proto)
        weights_before = weight_bytes(before_proto)
        big = model_io.writes_external_data(work.input_path, before_proto, keep_external=False)
        del before_proto

        model = onnx.load(str(work.input_path))
        # Per-channel QuantizeLinear/DequantizeLinear (their `axis`) needs opset 13.
        wanted = PER_CHANNEL_MIN_OPSET if config.per_channel and qdq else None
        model, prep = prepare_model(model, min_opset=wanted)
        warnings = list(prep.warnings)
        per_channel = config.per_channel
        if wanted is not None and prep.opset < wanted:
            per_channel = False
            warnings.append(f"quantized per tensor: opset {prep.opset} has no per-channel QDQ")
        has_subgraphs = len(list(iter_graphs(model.graph))) > 1
        if prep.subgraph_weight_nodes:
            warnings.append(
                f"{len(prep.subgraph_weight_nodes)} node(s) inside If/Loop/Scan subgraphs left "
                "in float: ORT's static quantizer does not enter subgraphs"
            )
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
            source = _pre_process(staged, Path(tmp) / "pre.onnx", big, warnings)
            names = {n.name for g in iter_graphs(load_proto(source).graph) for n in g.node}
            unknown = sorted(set(config.nodes_to_exclude) - names)
            if unknown:
                warnings.append(f"nodes_to_exclude names no node of the model: {unknown}")
            _quantize(
                source, work.output_path, feeds, config, per_channel, extra, big, has_subgraphs
            )
        if has_subgraphs:
            # Nodes feeding a subgraph's outer-scope reads can land after it: sort for the checker.
            resave_sorted(work.output_path, big)
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
                "subgraph_nodes_left_float": prep.subgraph_weight_nodes,
                "prepared": prep.notes,
            },
            warnings=warnings,
        )
