"""INT8/UINT8 dynamic quantization of weights with onnxruntime's IntegerOps quantizer."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import ModelProto, TensorProto

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.graph.analysis import count_ops, iter_graphs, load_proto, weight_bytes
from app.compression.graph.prepare import (
    name_unnamed_nodes,
    prepare_model,
    resave_sorted,
    subgraph_float_weights,
    subgraph_op_counts,
)
from app.compression.passes.base import CompressionPass, PassOutcome, PassWork, register_pass
from app.compression.passes.configs import QuantizeDynamicConfig

# Ops that hold the integer kernels a dynamically quantized node turns into.
QUANTIZED_OPS = (
    "MatMulInteger",
    "ConvInteger",
    "QAttention",
    "DynamicQuantizeLSTM",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QEmbedLayerNormalization",
)


def _node_names(model: ModelProto, op_type: str) -> list[str]:
    return [n.name for g in iter_graphs(model.graph) for n in g.node if n.op_type == op_type]


def _gather_8bit(model: ModelProto) -> int:
    # ORT quantizes a Gather by giving it an 8-bit copy of its table (no new op type).
    count = 0
    for graph in iter_graphs(model.graph):
        small = {
            t.name
            for t in graph.initializer
            if t.data_type in (TensorProto.INT8, TensorProto.UINT8)
        }
        count += sum(1 for n in graph.node if n.op_type == "Gather" and n.input[0] in small)
    return count


@dataclass(frozen=True)
class _Quantization:
    """What ORT's quantize_dynamic is asked to do, inside subgraphs or not."""

    model: ModelProto
    work: PassWork
    config: QuantizeDynamicConfig
    ort_ops: list[str]
    excluded: set[str]
    big: bool


def _quantize(job: _Quantization, enable_subgraph: bool) -> str | None:
    """Run ORT's quantize_dynamic into the output; why ORT cannot load the result, or None."""
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # ORT writes an "-inferred" copy beside its input, which must not land in (or race on)
    # the caller's folder.
    with job.work.scratch_dir(".qdyn-") as tmp:
        staged = Path(tmp) / "model.onnx"
        onnx.save_model(
            job.model, str(staged), save_as_external_data=job.big, location="model.data"
        )
        # No shape inference of ours: quantize_dynamic already runs onnx's infer_shapes_path
        # on load and again after its Gemm rewrite.
        quantize_dynamic(
            staged,
            job.work.output_path,
            op_types_to_quantize=job.ort_ops,
            per_channel=job.config.per_channel,
            reduce_range=job.config.reduce_range,
            weight_type=QuantType.QInt8 if job.config.weight_type == "int8" else QuantType.QUInt8,
            nodes_to_exclude=sorted(job.excluded),
            use_external_data_format=job.big,
            extra_options={"EnableSubgraph": enable_subgraph},
        )
    if len(list(iter_graphs(job.model.graph))) > 1:
        # ORT leaves nodes that feed a subgraph's outer-scope reads after it: sort for the checker.
        resave_sorted(job.work.output_path, job.big)
    return model_io.ort_load_error(job.work.output_path)


def _targets(config: QuantizeDynamicConfig, warnings: list[str]) -> list[str]:
    """The asked op types that ORT can quantize dynamically (Gemm by way of MatMul)."""
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    supported = set(IntegerOpsRegistry) | {"Gemm"}
    asked = config.quantized_op_types()
    ignored = [t for t in asked if t not in supported]
    if ignored:
        why = " (onnxruntime has no dynamically quantized GRU kernel)" if "GRU" in ignored else ""
        warnings.append(f"op types {ignored} cannot be dynamically quantized{why}; left in float")
    return [t for t in asked if t in supported]


def _exclusions(
    model: ModelProto, config: QuantizeDynamicConfig, targets: list[str], warnings: list[str]
) -> tuple[set[str], list[str]]:
    """(node names ORT must skip, op types to hand ORT) that make `targets` mean what it says."""
    # ORT's IntegerOps registry has no Gemm: in dynamic mode its quantizer first rewrites
    # every Gemm with alpha == beta == 1 and transA == 0 into MatMul(+Add) (transposing a
    # constant B) and then quantizes those as MatMul -- but only when "MatMul" is among its
    # op types, and under the new node name "<gemm name>_MatMul". We translate so that
    # "Gemm" and "MatMul" in op_types, and Gemm names in nodes_to_exclude, mean what they say.
    excluded = set(config.nodes_to_exclude)
    unknown = sorted(excluded - {n.name for g in iter_graphs(model.graph) for n in g.node})
    if unknown:
        warnings.append(f"nodes_to_exclude names no node of the model: {unknown}")
    gemms = _node_names(model, "Gemm")
    if "Gemm" in targets:
        excluded |= {f"{name}_MatMul" for name in gemms if name in excluded}
    else:
        excluded |= {f"{name}_MatMul" for name in gemms}
    if "Gemm" in targets and "MatMul" not in targets:
        excluded |= set(_node_names(model, "MatMul"))
    return excluded, sorted({"MatMul" if t == "Gemm" else t for t in targets})


def _quantize_with_fallback(
    job: _Quantization, subgraph_weights: bool, warnings: list[str]
) -> None:
    """Quantize into the output, inside If/Loop/Scan subgraphs too where that gives a model
    ORT loads; invalid_output when not even the main graph's quantization loads."""
    attempts = [True, False] if subgraph_weights else [False]
    for enable_subgraph in attempts:
        try:
            problem = _quantize(job, enable_subgraph)
        except Exception as exc:  # ORT's subgraph support is young: fall back, don't fail
            if not enable_subgraph:
                raise
            problem = f"{type(exc).__name__}: {exc}"
        if problem is None:
            return
        if not enable_subgraph:
            raise model_io.unloadable("quantized", problem)
        warnings.append(
            "quantizing inside If/Loop/Scan subgraphs gave a model onnxruntime cannot "
            f"load ({problem}); their weights were left in float"
        )


@register_pass
class QuantizeDynamicPass(CompressionPass[QuantizeDynamicConfig]):
    """Weights to 8 bits ahead of time; activations quantized per batch at run time."""

    def transform_files(self, work: PassWork, config: QuantizeDynamicConfig) -> PassOutcome:
        warnings: list[str] = []
        targets = _targets(config, warnings)
        before_proto = load_proto(work.input_path)
        before = count_ops(before_proto)
        candidates = sum(before.get(t, 0) for t in targets)
        if candidates == 0:
            present = ", ".join(f"{k}x{v}" for k, v in before.items()) or "none"
            raise PassError(
                "nothing_to_quantize",
                f"the model has no {'/'.join(targets or config.op_types)} nodes to quantize "
                f"(its ops: {present}); quantize_dynamic applies to MatMul, Gemm, Attention, "
                "Conv, LSTM and Gather.",
            )
        weights_before = weight_bytes(before_proto)
        big = model_io.writes_external_data(work.input_path, before_proto)
        del before_proto

        # Constant-node weights make ORT refuse ("Expected ... to be an initializer").
        model, prep = prepare_model(onnx.load(str(work.input_path)))
        warnings += prep.warnings
        # ORT's node exclusion and its Gemm rewrite both key on node names.
        name_unnamed_nodes(model)
        excluded, ort_ops = _exclusions(model, config, targets, warnings)
        # Weights inside If/Loop/Scan subgraphs: ORT quantizes them when asked (EnableSubgraph);
        # if that output does not load, we quantize the main graph only and say so.
        job = _Quantization(model, work, config, ort_ops, excluded, big)
        _quantize_with_fallback(job, bool(prep.subgraph_weight_nodes), warnings)
        del job, model
        after_proto = load_proto(work.output_path)
        after = count_ops(after_proto)
        quantized = sum(after.get(op, 0) - before.get(op, 0) for op in QUANTIZED_OPS)
        if "Gather" in targets:
            quantized += _gather_8bit(after_proto) - _gather_8bit(load_proto(work.input_path))
        if quantized <= 0:
            raise PassError(
                "nothing_to_quantize",
                f"none of the {candidates} {'/'.join(targets)} nodes could be quantized: ORT "
                "quantizes MatMul/Gemm only when the weight input is a constant initializer "
                "(Gemm only with alpha = beta = 1 and transA = 0), and excluded nodes stay float.",
            )
        left = sum(1 for n in _node_names(after_proto, "MatMul") if n not in excluded)
        if left and "MatMul" in ort_ops:
            warnings.append(
                f"{left} MatMul node(s) stay float: ORT quantizes a MatMul only when its weight "
                "input is a constant initializer (not e.g. attention-score MatMuls)"
            )
        relevant = set(targets) | set(QUANTIZED_OPS) | {"DynamicQuantizeLinear"}
        inside = subgraph_op_counts(after_proto)
        left_inside = [
            {
                "node": node.name,
                "reason": "onnxruntime left it in float"
                if node.op_type in targets
                else f"op_types leaves {node.op_type} out",
            }
            for node in subgraph_float_weights(after_proto)
        ]
        if left_inside:
            warnings.append(
                f"{len(left_inside)} weight node(s) inside If/Loop/Scan subgraphs stay float "
                "(see details.subgraph_nodes_left_float)"
            )
        weights_after = weight_bytes(after_proto)
        return PassOutcome(
            summary=f"Quantized {quantized} node(s) to {config.weight_type}; weights "
            f"{weights_before / 1e6:.2f} MB -> {weights_after / 1e6:.2f} MB.",
            details={
                "nodes_quantized": quantized,
                "op_counts_before": {k: v for k, v in before.items() if k in relevant},
                "op_counts_after": {k: v for k, v in after.items() if k in relevant},
                "weight_bytes_before": weights_before,
                "weight_bytes_after": weights_after,
                "gemm_rewritten_as_matmul": before.get("Gemm", 0) - after.get("Gemm", 0),
                "subgraph_nodes_quantized": sum(inside.get(op, 0) for op in QUANTIZED_OPS),
                "subgraph_nodes_left_float": left_inside,
                "prepared": prep.notes,
            },
            warnings=warnings,
        )
