"""quantize_dynamic and convert_fp16 on real (small) models, checked with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.graph.analysis import count_ops, inspect_model
from app.compression.measure.benchmark import MeasureOptions, benchmark_pair
from app.compression.passes.convert_fp16 import ConvertFp16Config, ConvertFp16Pass
from app.compression.passes.quantize_dynamic import QuantizeDynamicConfig, QuantizeDynamicPass


def _compare(original: Path, compressed: Path) -> dict:
    options = MeasureOptions(
        input_shapes={"input": [4, 256]} if "mlp" in original.name else None,
        runs=3,
        warmup=1,
        threads=1,
        time_budget_s=2.0,
        fidelity_samples=4,
    )
    return benchmark_pair(original, compressed, options).metrics.model_dump(mode="json")


def _save(tmp_path: Path, nodes: list, inputs: list, inits: list) -> Path:
    graph = helper.make_graph(
        nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits
    )
    path = tmp_path / "small.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_quantize_mlp(mlp_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "mlp_int8.onnx"
    report = QuantizeDynamicPass().run(mlp_path, QuantizeDynamicConfig(), out)
    ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    ops = inspect_model(out).op_counts
    assert ops["MatMulInteger"] == 3 and ops["DynamicQuantizeLinear"] == 3
    assert "MatMul" not in ops
    assert report.details["nodes_quantized"] == 3
    assert report.details["op_counts_before"]["MatMul"] == 3
    assert report.details["weight_bytes_after"] < report.details["weight_bytes_before"] / 3.5
    metrics = _compare(mlp_path, out)
    assert metrics["compression_ratio"] > 3
    assert metrics["fidelity"]["cosine_similarity"] > 0.99
    assert not list(tmp_path.glob(".qdyn-*")), "staging folder left behind"


def test_quantize_per_channel_uint8_with_exclusion(mlp_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "mlp_pc.onnx"
    config = QuantizeDynamicConfig(
        weight_type="uint8", per_channel=True, reduce_range=True, nodes_to_exclude=["fc2/MatMul"]
    )
    report = QuantizeDynamicPass().run(mlp_path, config, out)
    assert report.details["nodes_quantized"] == 2
    assert count_ops(onnx.load(str(out)))["MatMul"] == 1
    assert report.warnings == []
    report = QuantizeDynamicPass().run(
        mlp_path, QuantizeDynamicConfig(nodes_to_exclude=["fc9/MatMul"]), out
    )
    assert report.warnings == ["nodes_to_exclude names no node of the model: ['fc9/MatMul']"]
    assert _compare(mlp_path, out)["fidelity"]["cosine_similarity"] > 0.99


def test_quantize_gemm_via_matmul_rewrite(conv_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "conv_int8.onnx"
    report = QuantizeDynamicPass().run(conv_path, QuantizeDynamicConfig(op_types=["Gemm"]), out)
    ops = inspect_model(out).op_counts
    assert ops["MatMulInteger"] == 1 and "Gemm" not in ops
    assert report.details["gemm_rewritten_as_matmul"] == 1
    assert _compare(conv_path, out)["fidelity"]["cosine_similarity"] > 0.99


def test_excluding_the_only_gemm_quantizes_nothing(conv_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "conv_none.onnx"
    with pytest.raises(PassError) as err:
        QuantizeDynamicPass().run(conv_path, QuantizeDynamicConfig(nodes_to_exclude=["fc"]), out)
    assert err.value.code == "nothing_to_quantize"
    assert not out.exists()


def test_quantize_without_matmul_fails_clearly(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    b = numpy_helper.from_array(np.ones(4, "f4"), "b")
    path = _save(tmp_path, [helper.make_node("Add", ["x", "b"], ["y"])], [x], [b])
    with pytest.raises(PassError) as err:
        QuantizeDynamicPass().run(path, QuantizeDynamicConfig(), tmp_path / "out.onnx")
    assert err.value.code == "nothing_to_quantize"
    assert "MatMul" in err.value.message and "Add" in err.value.message


def test_quantize_matmul_of_two_activations_fails_clearly(tmp_path: Path) -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, 3])
    path = _save(tmp_path, [helper.make_node("MatMul", ["a", "b"], ["y"])], [a, b], [])
    out = tmp_path / "out.onnx"
    with pytest.raises(PassError) as err:
        QuantizeDynamicPass().run(path, QuantizeDynamicConfig(), out)
    assert err.value.code == "nothing_to_quantize" and "constant" in err.value.message
    assert not out.exists()


def test_activation_matmul_left_float_is_reported(tmp_path: Path) -> None:
    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [3, 5])
    w = numpy_helper.from_array(np.ones((4, 3), "f4"), "w")
    nodes = [
        helper.make_node("MatMul", ["a", "w"], ["h"]),
        helper.make_node("MatMul", ["h", "b"], ["y"]),
    ]
    path = _save(tmp_path, nodes, [a, b], [w])
    report = QuantizeDynamicPass().run(path, QuantizeDynamicConfig(), tmp_path / "out.onnx")
    assert report.details["nodes_quantized"] == 1
    assert any("1 MatMul node(s) stay float" in w for w in report.warnings)


def test_fp16_mlp(mlp_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "mlp_fp16.onnx"
    report = ConvertFp16Pass().run(mlp_path, ConvertFp16Config(), out)
    model = onnx.load(str(out))
    assert {t.data_type for t in model.graph.initializer} == {TensorProto.FLOAT16}
    info = inspect_model(out)  # the checker wants the converter's Cast nodes sorted
    assert info.inputs[0].dtype == "float32" and info.outputs[0].dtype == "float32"
    assert report.details["tensors_converted"] == 6
    metrics = _compare(mlp_path, out)
    assert 1.9 < metrics["compression_ratio"] < 2.05
    assert metrics["fidelity"]["cosine_similarity"] > 0.9999
    assert metrics["fidelity"]["max_abs_error"] < 0.05


def test_fp16_without_io_casts(conv_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "conv_fp16.onnx"
    ConvertFp16Pass().run(conv_path, ConvertFp16Config(keep_io_types=False), out)
    info = inspect_model(out)
    assert info.inputs[0].dtype == "float16" and "Cast" not in info.op_counts
    assert _compare(conv_path, out)["fidelity"]["cosine_similarity"] > 0.999


def test_fp16_block_list_is_honoured(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    big = numpy_helper.from_array(np.array([1e6, 1.0, 2.0], "f4"), "big")
    path = _save(tmp_path, [helper.make_node("Mul", ["x", "big"], ["y"])], [x], [big])

    with pytest.raises(PassError) as err:
        ConvertFp16Pass().run(path, ConvertFp16Config(op_block_list=["Mul"]), tmp_path / "o.onnx")

    assert err.value.code == "nothing_to_convert"


def test_fp16_clamps_weights_beyond_its_range_when_outputs_stay_right(tmp_path: Path) -> None:
    # Greater only compares: clamping its threshold to 65504 changes no output.
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.BOOL, [3])
    big = numpy_helper.from_array(np.array([1e6, 1.0, 2.0], "f4"), "big")
    graph = helper.make_graph(
        [helper.make_node("Greater", ["x", "big"], ["y"])], "g", [x], [y], [big]
    )
    path = tmp_path / "greater.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)

    report = ConvertFp16Pass().run(path, ConvertFp16Config(), tmp_path / "o.onnx")

    assert any("exceed the float16 range" in w for w in report.warnings)


@pytest.mark.parametrize("kind", ["quantize_dynamic", "convert_fp16"])
def test_large_models_are_written_with_external_data(
    kind: str, mlp_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    # Pretend every model is near the 2 GiB protobuf limit.
    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 0)
    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 0)
    out = tmp_path / "big.onnx"
    if kind == "quantize_dynamic":
        QuantizeDynamicPass().run(mlp_path, QuantizeDynamicConfig(), out)
    else:
        ConvertFp16Pass().run(mlp_path, ConvertFp16Config(), out)
    assert inspect_model(out).has_external_data
    assert (tmp_path / "big.onnx.data").stat().st_size > out.stat().st_size
    metrics = _compare(mlp_path, out)
    assert metrics["compressed"]["size_bytes"] > (tmp_path / "big.onnx.data").stat().st_size
    assert metrics["fidelity"]["cosine_similarity"] > 0.99
