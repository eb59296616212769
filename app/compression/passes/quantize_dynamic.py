"""INT8/UINT8 dynamic quantization of weights with onnxruntime's IntegerOps quantizer."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from app.compression.graph import model_io
from app.compression.passes.base import (
    CompressionPass,
    PassConfig,
    PassContext,
    PassError,
    PassReport,
    register_pass,
)

if TYPE_CHECKING:
    from onnx import ModelProto

OpType = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, pattern=r"^[A-Za-z_][\w.]*$")
]
NodeName = Annotated[str, StringConstraints(min_length=1)]

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


class QuantizeDynamicConfig(PassConfig):
    """Settings of onnxruntime's dynamic (weights ahead of time, activations at run time) pass."""

    type: Literal["quantize_dynamic"] = Field(
        default="quantize_dynamic", description="Pass discriminator."
    )
    weight_type: Literal["int8", "uint8"] = Field(
        default="int8",
        description="Integer type of the quantized weights; int8 suits most x86/ARM CPUs.",
    )
    per_channel: bool = Field(
        default=False,
        description="One scale per output channel instead of per tensor: more accurate, "
        "slightly larger.",
    )
    reduce_range: bool = Field(
        default=False,
        description="Quantize weights to 7 bits; can help accuracy on CPUs without VNNI.",
    )
    op_types: list[OpType] = Field(
        default=["MatMul", "Gemm", "Attention"],
        min_length=1,
        description="Op types to quantize. Only MatMul/Gemm with a constant weight input, Conv, "
        "Attention, LSTM, Gather and EmbedLayerNormalization can be quantized dynamically.",
    )
    nodes_to_exclude: list[NodeName] = Field(
        default=[], description="Names of nodes to leave in float (e.g. a sensitive last layer)."
    )

    @field_validator("op_types")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


def _node_names(model: ModelProto, op_type: str) -> list[str]:
    from app.compression.graph.analysis import iter_graphs

    return [n.name for g in iter_graphs(model.graph) for n in g.node if n.op_type == op_type]


def _gather_8bit(model: ModelProto) -> int:
    # ORT quantizes a Gather by giving it an 8-bit copy of its table (no new op type).
    from onnx import TensorProto

    from app.compression.graph.analysis import iter_graphs

    count = 0
    for graph in iter_graphs(model.graph):
        small = {
            t.name
            for t in graph.initializer
            if t.data_type in (TensorProto.INT8, TensorProto.UINT8)
        }
        count += sum(1 for n in graph.node if n.op_type == "Gather" and n.input[0] in small)
    return count


def _quantize(
    model: ModelProto,
    output_path: Path,
    config: QuantizeDynamicConfig,
    ort_ops: list[str],
    excluded: set[str],
    big: bool,
    enable_subgraph: bool,
) -> str | None:
    """Run ORT's quantize_dynamic into output_path; why ORT cannot load the result, or None."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from app.compression.graph.analysis import iter_graphs
    from app.compression.graph.prepare import resave_sorted

    # A private folder next to the output: ORT writes a "-inferred" copy beside its input,
    # which must not land in (or race on) the caller's folder.
    with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".qdyn-") as tmp:
        staged = Path(tmp) / "model.onnx"
        onnx.save_model(model, str(staged), save_as_external_data=big, location="model.data")
        # No shape inference of ours: quantize_dynamic already runs onnx's infer_shapes_path
        # on load and again after its Gemm rewrite.
        quantize_dynamic(
            staged,
            output_path,
            op_types_to_quantize=ort_ops,
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=QuantType.QInt8 if config.weight_type == "int8" else QuantType.QUInt8,
            nodes_to_exclude=sorted(excluded),
            use_external_data_format=big,
            extra_options={"EnableSubgraph": enable_subgraph},
        )
    if len(list(iter_graphs(model.graph))) > 1:
        # ORT leaves nodes that feed a subgraph's outer-scope reads after it: sort for the checker.
        resave_sorted(output_path, big)
    return model_io.ort_load_error(output_path)


@register_pass
class QuantizeDynamicPass(CompressionPass[QuantizeDynamicConfig]):
    """Weights to 8 bits ahead of time; activations quantized per batch at run time."""

    type = "quantize_dynamic"
    config_cls = QuantizeDynamicConfig

    def run(
        self,
        input_path: Path,
        config: QuantizeDynamicConfig,
        output_path: Path,
        context: PassContext | None = None,
    ) -> PassReport:
        import onnx
        from onnxruntime.quantization.registry import IntegerOpsRegistry

        from app.compression.graph.analysis import (
            count_ops,
            iter_graphs,
            load_proto,
            weight_bytes,
        )
        from app.compression.graph.prepare import (
            name_unnamed_nodes,
            prepare_model,
            subgraph_op_counts,
        )

        warnings: list[str] = []
        # ORT's IntegerOps registry has no Gemm: in dynamic mode its quantizer first rewrites
        # every Gemm with alpha == beta == 1 and transA == 0 into MatMul(+Add) (transposing a
        # constant B) and then quantizes those as MatMul -- but only when "MatMul" is among its
        # op types, and under the new node name "<gemm name>_MatMul". We translate so that
        # "Gemm" and "MatMul" in op_types, and Gemm names in nodes_to_exclude, mean what they say.
        supported = set(IntegerOpsRegistry) | {"Gemm"}
        targets = [t for t in config.op_types if t in supported]
        ignored = [t for t in config.op_types if t not in supported]
        if ignored:
            warnings.append(f"op types {ignored} cannot be dynamically quantized; ignored")

        before_proto = load_proto(input_path)
        before = count_ops(before_proto)
        excluded = set(config.nodes_to_exclude)
        candidates = sum(before.get(t, 0) for t in targets)
        if candidates == 0:
            present = ", ".join(f"{k}x{v}" for k, v in before.items()) or "none"
            raise PassError(
                "nothing_to_quantize",
                f"the model has no {'/'.join(config.op_types)} nodes to quantize "
                f"(its ops: {present}); quantize_dynamic applies to MatMul, Gemm, Attention, "
                "Conv, LSTM and Gather.",
            )
        weights_before = weight_bytes(before_proto)
        big = model_io.exceeds_protobuf_limit(input_path, before_proto) or any(
            onnx.external_data_helper.uses_external_data(t) for t in before_proto.graph.initializer
        )
        del before_proto

        model = onnx.load(str(input_path))
        # Constant-node weights make ORT refuse ("Expected ... to be an initializer").
        model, prep = prepare_model(model)
        warnings += prep.warnings
        # ORT's node exclusion and its Gemm rewrite both key on node names.
        name_unnamed_nodes(model)
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
        ort_ops = sorted({"MatMul" if t == "Gemm" else t for t in targets})

        # Weights inside If/Loop/Scan subgraphs: ORT quantizes them when asked (EnableSubgraph);
        # if that output does not load, we quantize the main graph only and say so.
        attempts = [True, False] if prep.subgraph_weight_nodes else [False]
        for enable_subgraph in attempts:
            try:
                problem = _quantize(
                    model, output_path, config, ort_ops, excluded, big, enable_subgraph
                )
            except Exception as exc:  # ORT's subgraph support is young: fall back, don't fail
                if not enable_subgraph:
                    raise
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                break
            if enable_subgraph:
                warnings.append(
                    "quantizing inside If/Loop/Scan subgraphs gave a model onnxruntime cannot "
                    f"load ({problem}); their weights were left in float"
                )
        del model
        if problem is not None:
            model_io.remove_model(output_path)
            raise PassError(
                "invalid_output", f"onnxruntime cannot load the quantized model: {problem}"
            )
        after_proto = load_proto(output_path)
        after = count_ops(after_proto)
        quantized = sum(after.get(op, 0) - before.get(op, 0) for op in QUANTIZED_OPS)
        if "Gather" in targets:
            quantized += _gather_8bit(after_proto) - _gather_8bit(load_proto(input_path))
        if quantized <= 0:
            model_io.remove_model(output_path)
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
        if prep.subgraph_weight_nodes and not any(inside.get(op) for op in QUANTIZED_OPS):
            warnings.append(
                f"{len(prep.subgraph_weight_nodes)} weight node(s) inside If/Loop/Scan "
                "subgraphs stay float"
            )
        weights_after = weight_bytes(after_proto)
        return PassReport(
            type=self.type,
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
                "prepared": prep.notes,
            },
            warnings=warnings,
        )
