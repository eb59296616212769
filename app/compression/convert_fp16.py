"""Float32 -> float16 conversion with onnxruntime's transformers float16 converter."""

from __future__ import annotations

import heapq
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, StringConstraints

from app.compression.base import (
    CompressionPass,
    PassConfig,
    PassContext,
    PassError,
    PassReport,
    register_pass,
)

if TYPE_CHECKING:
    from onnx import GraphProto, ModelProto, NodeProto

FP16_MAX = 65504.0
FP16_MIN_POSITIVE = 5.96e-08  # smallest float16 subnormal; the converter's own default
# Above 1.8 GiB the output may not fit in one 2 GiB protobuf: keep weights in a side file.
_EXTERNAL_DATA_THRESHOLD = int(1.8 * 1024**3)


class ConvertFp16Config(PassConfig):
    """Settings of the float16 conversion."""

    type: Literal["convert_fp16"] = Field(default="convert_fp16", description="Pass discriminator.")
    keep_io_types: bool = Field(
        default=True,
        description="Keep float32 graph inputs/outputs (Cast nodes at the edges), so callers "
        "need no change.",
    )
    op_block_list: list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None,
        description="Op types left in float32; None means onnxruntime's default list "
        "(ML ops, TopK, NonMaxSuppression, Range, CumSum, Min, Max, ...).",
    )


def _float_tensors(model: ModelProto) -> tuple[int, int, int]:
    """(float32 tensors, values above the float16 range, nonzero values below it)."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    from app.compression.analysis import iter_weight_tensors

    tensors = big = tiny = 0
    for tensor in iter_weight_tensors(model):
        if tensor.data_type != TensorProto.FLOAT:
            continue
        tensors += 1
        magnitude = np.abs(numpy_helper.to_array(tensor))
        big += int(np.count_nonzero(np.isfinite(magnitude) & (magnitude > FP16_MAX)))
        tiny += int(np.count_nonzero((magnitude > 0) & (magnitude < FP16_MIN_POSITIVE)))
    return tensors, big, tiny


def _consumed_names(node: NodeProto) -> list[str]:
    # A node with subgraphs also depends on outer-scope values its subgraphs read.
    from onnx import AttributeProto

    from app.compression.analysis import iter_graphs

    names = list(node.input)
    for attr in node.attribute:
        subgraphs = [attr.g] if attr.type == AttributeProto.GRAPH else list(attr.graphs)
        for sub in subgraphs:
            names += [i for g in iter_graphs(sub) for n in g.node for i in n.input]
    return names


def topological_sort(graph: GraphProto) -> None:
    """Reorder nodes so producers precede consumers (the converter appends its Casts last)."""
    nodes = list(graph.node)
    producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
    consumers: list[list[int]] = [[] for _ in nodes]
    pending = [0] * len(nodes)
    for i, node in enumerate(nodes):
        for j in {producer[n] for n in _consumed_names(node) if n in producer} - {i}:
            consumers[j].append(i)
            pending[i] += 1
    # A heap of indices keeps the original order wherever the dependencies allow it.
    ready = [i for i, count in enumerate(pending) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for j in consumers[i]:
            pending[j] -= 1
            if pending[j] == 0:
                heapq.heappush(ready, j)
    if len(order) != len(nodes):
        return  # a cycle: not ours to fix, leave the graph as the converter made it
    sorted_nodes = [nodes[i] for i in order]
    graph.ClearField("node")
    graph.node.extend(sorted_nodes)


@register_pass
class ConvertFp16Pass(CompressionPass[ConvertFp16Config]):
    """Half-precision weights and compute; halves the size, speeds up fp16-capable hardware."""

    type = "convert_fp16"
    config_cls = ConvertFp16Config

    def run(
        self,
        input_path: Path,
        config: ConvertFp16Config,
        output_path: Path,
        context: PassContext | None = None,
    ) -> PassReport:
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        from app.compression.analysis import model_size_bytes, weight_bytes

        warnings: list[str] = []
        large = model_size_bytes(input_path) > _EXTERNAL_DATA_THRESHOLD
        model = onnx.load(str(input_path))
        tensors_before, big, tiny = _float_tensors(model)
        if tensors_before == 0:
            raise PassError(
                "nothing_to_convert", "the model has no float32 weights to convert to float16"
            )
        weights_before = weight_bytes(model)
        if large:
            # In-memory shape inference stops at 2 GiB protobufs; the converter copes without.
            warnings.append("model over 1.8 GiB: converted without shape inference")
        if big:
            warnings.append(f"{big} weight value(s) exceed the float16 range; clamped to ±65504")
        if tiny:
            warnings.append(f"{tiny} tiny nonzero weight value(s) raised to ±{FP16_MIN_POSITIVE}")

        # Passing a ModelProto (not a path) keeps the converter's temp files out of the
        # input's folder; it then runs onnx shape inference in memory unless told not to.
        model = convert_float_to_float16(
            model,
            min_positive_val=FP16_MIN_POSITIVE,
            max_finite_val=FP16_MAX,
            keep_io_types=config.keep_io_types,
            disable_shape_infer=large,
            op_block_list=config.op_block_list,
        )
        topological_sort(model.graph)
        tensors_after, _, _ = _float_tensors(model)
        weights_after = weight_bytes(model)
        converted = tensors_before - tensors_after
        if converted == 0:
            raise PassError(
                "nothing_to_convert",
                "no float32 weight could be converted: every consumer is in op_block_list",
            )
        onnx.save_model(
            model,
            str(output_path),
            save_as_external_data=large,
            all_tensors_to_one_file=True,
            location=f"{output_path.name}.data",
        )
        return PassReport(
            type=self.type,
            summary=f"Converted {converted} float32 tensor(s) to float16; weights "
            f"{weights_before / 1e6:.2f} MB -> {weights_after / 1e6:.2f} MB.",
            details={
                "tensors_converted": converted,
                "tensors_kept_float32": tensors_after,
                "weight_bytes_before": weights_before,
                "weight_bytes_after": weights_after,
                "keep_io_types": config.keep_io_types,
            },
            warnings=warnings,
        )
