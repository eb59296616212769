"""Every preset on every export shape: the expected nodes change, or a specific error code."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from app.compression.errors import PassError
from app.compression.graph.analysis import count_ops, iter_graphs
from app.compression.passes.base import PASS_REGISTRY, PassReport
from app.compression.passes.recipes import PRESETS, expand_preset
from tests.compression.passes.conftest import ExportShape

SHAPES = ("crnn", "vad", "paddle", "encoder", "transposed", "constant")

# Where a preset cannot apply, the code it must fail with.
REFUSALS = {
    ("int8-dynamic", "paddle"): "nothing_to_quantize",  # only Conv: left out of dynamic INT8
    ("int4-weight-only", "paddle"): "nothing_to_quantize",  # no MatMul/Gemm at all
    ("prune-channels-30", "vad"): "nothing_to_prune",  # every layer inside an If branch
    ("deep-compression", "vad"): "nothing_to_cluster",  # no weight of 1024+ elements
}

# Nodes each preset must have changed, per shape (quant_pre_process fuses MatMul+Add to Gemm).
DYNAMIC = {"crnn": 2, "vad": 4, "encoder": 6, "transposed": 2, "constant": 2}
STATIC = {
    "crnn": {"Conv": 2, "LSTM": 1, "Gemm": 1},
    "vad": {"Conv": 2, "LSTM": 2, "MatMul": 2},
    "paddle": {"Conv": 5},
    "encoder": {"MatMul": 6},
    "transposed": {"Gemm": 1, "MatMul": 1},
    "constant": {"Conv": 2, "Gemm": 2},
}
INT4 = {"crnn": 1, "vad": 2, "encoder": 6, "transposed": 2, "constant": 2}
PRUNED_TENSORS = {"crnn": 3, "vad": 4, "paddle": 5, "encoder": 6, "transposed": 2, "constant": 4}


def _nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for g in iter_graphs(model.graph) for n in g.node]


def _dequantized_consumers(model: onnx.ModelProto) -> Counter[str]:
    """Op types of the nodes that read a DequantizeLinear output, in every graph."""
    nodes = _nodes(model)
    dequantized = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
    return Counter(
        n.op_type
        for n in nodes
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and any(i in dequantized for i in n.input)
    )


def _check_dynamic(shape: str, model: onnx.ModelProto, report: PassReport) -> None:
    ops = count_ops(model)
    integer = ops.get("DynamicQuantizeLSTM", 0) + ops.get("MatMulInteger", 0)
    assert integer == report.details["nodes_quantized"] == DYNAMIC[shape]
    if shape in ("crnn", "vad"):
        assert ops["DynamicQuantizeLSTM"] == ops.get("LSTM", 0) + ops["DynamicQuantizeLSTM"] > 0


def _check_static(shape: str, model: onnx.ModelProto, report: PassReport) -> None:
    consumers = _dequantized_consumers(model)
    for op, count in STATIC[shape].items():
        assert consumers[op] >= count, (op, consumers)


def _check_int4(shape: str, model: onnx.ModelProto, report: PassReport) -> None:
    assert count_ops(model)["MatMulNBits"] == report.details["nodes_quantized"] == INT4[shape]


def _check_fp16(shape: str, model: onnx.ModelProto, report: PassReport) -> None:
    halves = [
        t for g in iter_graphs(model.graph) for t in g.initializer if t.data_type == 10
    ]  # TensorProto.FLOAT16
    assert halves


def _check_sparse(shape: str, model: onnx.ModelProto, report: PassReport) -> None:
    rows = report.details["tensors"]
    assert len(rows) == PRUNED_TENSORS[shape]
    assert all(row["sparsity"] >= 0.49 for row in rows)


def _check_channels(shape: str, model: onnx.ModelProto, report: PassReport) -> None:
    assert report.details["params_after"] < report.details["params_before"]
    assert report.details["layers"]


def _check_clustered(shape: str, model: onnx.ModelProto, report: PassReport) -> None:
    gathers = [n for n in _nodes(model) if n.name.endswith("/cluster_gather")]
    assert len(gathers) == len(report.details["tensors"]) > 0


CHECKS: dict[str, Callable[[str, onnx.ModelProto, PassReport], None]] = {
    "int8-dynamic": _check_dynamic,
    "int8-static": _check_static,
    "int4-weight-only": _check_int4,
    "fp16": _check_fp16,
    "prune-unstructured-50": _check_sparse,
    "prune-channels-30": _check_channels,
    "deep-compression": _check_clustered,
}


def test_every_preset_has_a_check() -> None:
    assert set(CHECKS) == set(PRESETS)


def _run_preset(preset: str, shape: ExportShape, folder: Path) -> tuple[Path, PassReport]:
    current, report = shape.path, None
    for index, config in enumerate(expand_preset(preset).configs()):
        output = folder / f"{index}-{config.type}.onnx"
        report = PASS_REGISTRY[config.type]().run(current, config, output, shape.context)
        current = output
    assert report is not None
    return current, report


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("preset", list(CHECKS))
def test_preset_on_export_shape(
    preset: str, shape: str, export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    model = export_shapes[shape]
    refusal = REFUSALS.get((preset, shape))
    if refusal is not None:
        with pytest.raises(PassError) as err:
            _run_preset(preset, model, tmp_path)
        assert err.value.code == refusal, err.value.message
        return
    output, report = _run_preset(preset, model, tmp_path)
    CHECKS[preset](shape, onnx.load(str(output)), report)
    # The user's check: the compressed model loads and answers like the original, in shape.
    original = ort.InferenceSession(str(model.path), providers=["CPUExecutionProvider"])
    compressed = ort.InferenceSession(str(output), providers=["CPUExecutionProvider"])
    expected = original.run(None, model.feed)
    got = compressed.run(None, model.feed)
    assert [a.shape for a in got] == [a.shape for a in expected]
    assert all(np.isfinite(a).all() for a in got)
