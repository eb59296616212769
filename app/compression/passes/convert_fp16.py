"""Float32 -> float16 conversion with onnxruntime's transformers float16 converter."""

from __future__ import annotations

import numpy as np
from onnx import ModelProto, TensorProto, numpy_helper

from app.compression.errors import PassError
from app.compression.graph.analysis import iter_graphs, iter_weight_tensors, weight_bytes
from app.compression.graph.prepare import name_unnamed_nodes, prepare_model, topological_sort
from app.compression.passes.base import ModelPass, PassOutcome, PassWork, register_pass
from app.compression.passes.configs import ConvertFp16Config
from app.compression.passes.fp16_guard import (
    FP16_MAX,
    drop_cast_roundtrips,
    guarded_convert,
    quantized_islands,
)

FP16_MIN_POSITIVE = 5.96e-08  # smallest float16 subnormal; the converter's own default


def _float_tensors(model: ModelProto) -> tuple[int, int, int]:
    """(float32 tensors, values above the float16 range, nonzero values below it)."""
    tensors = big = tiny = 0
    for tensor in iter_weight_tensors(model):
        if tensor.data_type != TensorProto.FLOAT:
            continue
        tensors += 1
        magnitude = np.abs(numpy_helper.to_array(tensor))
        big += int(np.count_nonzero(np.isfinite(magnitude) & (magnitude > FP16_MAX)))
        tiny += int(np.count_nonzero((magnitude > 0) & (magnitude < FP16_MIN_POSITIVE)))
    return tensors, big, tiny


def _subgraph_fp16_weights(model: ModelProto) -> int:
    subgraphs = list(iter_graphs(model.graph))[1:]
    return sum(t.data_type == TensorProto.FLOAT16 for g in subgraphs for t in g.initializer)


def _weights_outside(model: ModelProto, kept: set[str]) -> int:
    """float32 initializers that some node outside `kept` reads: what is left to convert."""
    count = 0
    for graph in iter_graphs(model.graph):
        floats = {t.name for t in graph.initializer if t.data_type == TensorProto.FLOAT}
        read = {i for node in graph.node if node.name not in kept for i in node.input}
        count += len(floats & read)
    return count


def _already_quantized(islands: set[str]) -> PassError:
    return PassError(
        "already_quantized",
        f"the model is already quantized: its {len(islands)} quantized node(s) and their "
        "float neighbours stay float32, and no other float32 weight is left to convert to "
        "float16",
    )


def _convert(
    model: ModelProto, config: ConvertFp16Config, nodes: set[str], large: bool
) -> ModelProto:
    # onnxruntime loads only when a pass runs, not wherever passes are looked up.
    from onnxruntime.transformers.float16 import convert_float_to_float16

    work = model.__class__()
    work.CopyFrom(model)
    # Passing a ModelProto (not a path) keeps the converter's temp files out of the
    # input's folder; it then runs onnx shape inference in memory unless told not to.
    converted = convert_float_to_float16(
        work,
        min_positive_val=FP16_MIN_POSITIVE,
        max_finite_val=FP16_MAX,
        keep_io_types=config.keep_io_types,
        disable_shape_infer=large,
        op_block_list=config.op_block_list,
        node_block_list=sorted(nodes),
    )
    drop_cast_roundtrips(converted)
    # The converter appends its Casts last; onnx's checker wants them sorted.
    topological_sort(converted.graph)
    return converted


@register_pass
class ConvertFp16Pass(ModelPass[ConvertFp16Config]):
    """Half-precision weights and compute; halves the size, speeds up fp16-capable hardware."""

    loads_as = "float16"
    keeps_external_data = False

    def transform(
        self, model: ModelProto, config: ConvertFp16Config, work: PassWork
    ) -> tuple[ModelProto, PassOutcome]:
        warnings: list[str] = []
        large = work.external_data
        tensors_before, big, tiny = _float_tensors(model)
        if tensors_before == 0:
            raise PassError(
                "nothing_to_convert", "the model has no float32 weights to convert to float16"
            )
        weights_before = weight_bytes(model)
        # Constant weights become initializers, so a node kept in float32 keeps its weight too.
        model, prep = prepare_model(model)
        # The converter's node_block_list matches by name: every node needs one.
        name_unnamed_nodes(model)
        if large:
            # In-memory shape inference stops at 2 GiB protobufs; the converter copes without.
            warnings.append("model over 1.8 GiB: converted without shape inference")
        if big:
            warnings.append(f"{big} weight value(s) exceed the float16 range; clamped to ±65504")
        if tiny:
            warnings.append(f"{tiny} tiny nonzero weight value(s) raised to ±{FP16_MIN_POSITIVE}")

        # Already quantized (Q/DQ or integer ops): those islands stay float32 as they are.
        islands = quantized_islands(model)
        if islands and not _weights_outside(model, islands):
            raise _already_quantized(islands)
        staged = model
        model, check, found = guarded_convert(
            staged,
            lambda nodes: _convert(staged, config, nodes | islands, large),
            work.context,
            kept=islands,
        )
        warnings += found
        tensors_after, _, _ = _float_tensors(model)
        converted = tensors_before - tensors_after
        if converted <= 0 and islands:
            raise _already_quantized(islands)
        if converted <= 0:
            auto = check.get("nodes_out_of_range", []) + check.get("nodes_found_by_search", [])
            why = f" (overflowing on sample inputs: {auto})" if auto else " (op_block_list)"
            raise PassError(
                "nothing_to_convert",
                f"no float32 weight could be converted: every consumer is kept in float32{why}",
            )
        if prep.subgraph_weight_nodes:
            inside = _subgraph_fp16_weights(model)
            if inside:
                prep.notes.append(f"converted {inside} weight(s) inside If/Loop/Scan subgraphs")
            else:
                warnings.append("weights inside If/Loop/Scan subgraphs were left in float32")
        weights_after = weight_bytes(model)
        return model, PassOutcome(
            summary=f"Converted {converted} float32 tensor(s) to float16; weights "
            f"{weights_before / 1e6:.2f} MB -> {weights_after / 1e6:.2f} MB.",
            details={
                "tensors_converted": converted,
                "tensors_kept_float32": tensors_after,
                "weight_bytes_before": weights_before,
                "weight_bytes_after": weights_after,
                "keep_io_types": config.keep_io_types,
                "node_block_list": check.get("nodes_out_of_range", [])
                + check.get("nodes_found_by_search", []),
                "overflow_check": check,
                "quantized_nodes_kept_float32": len(islands),
                "prepared": prep.notes,
            },
            warnings=prep.warnings + warnings,
        )
