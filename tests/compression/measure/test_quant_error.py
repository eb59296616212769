"""Weight error per tensor for every quantized layout, and per-node output sensitivity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

from app.compression.measure.quant_error import node_sensitivity, weight_error_report
from app.compression.measure.weights import dequantized_weights
from tests.builders import build_conv_net, build_mlp

WEIGHT = np.array([[1.0, 0.012], [-2.0, 0.5]], np.float32)


def _matmul(path: Path, nodes: list[onnx.NodeProto], inits: list[TensorProto]) -> Path:
    """x [1, 2] @ w, where `nodes` compute "w" from `inits` (or inits hold "w" itself)."""
    graph = helper.make_graph(
        [*nodes, helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def original(tmp_path: Path) -> Path:
    return _matmul(tmp_path / "w.onnx", [], [numpy_helper.from_array(WEIGHT, "w")])


def _dq(path: Path, q: np.ndarray, scale: np.ndarray, zp: np.ndarray, axis: int = 1) -> Path:
    inits = [
        numpy_helper.from_array(q, "w_quantized"),
        numpy_helper.from_array(scale.astype(np.float32), "w_scale"),
        numpy_helper.from_array(zp, "w_zero_point"),
    ]
    dq = helper.make_node(
        "DequantizeLinear", ["w_quantized", "w_scale", "w_zero_point"], ["w"], axis=axis
    )
    return _matmul(path, [dq], inits)


def test_dequantize_linear_per_tensor_and_per_axis(original: Path, tmp_path: Path) -> None:
    # per tensor, step 0.02, uint8 around 128: 0.012 -> 129 -> 0.02 (error 0.008), others exact
    q = np.array([[178, 129], [28, 153]], np.uint8)
    report = weight_error_report(
        original, _dq(tmp_path / "t.onnx", q, np.array(0.02), np.uint8(128))
    )
    assert report.mean_abs == pytest.approx(0.008 / 4)
    assert report.max_abs == pytest.approx(0.008)
    (row,) = report.tensors
    assert (row.name, row.stored_as, row.kind) == ("w", "w_quantized", "DequantizeLinear")
    assert row.shape == [2, 2] and report.unmatched == []
    # per column (axis 1): steps 0.02 and 0.005; 0.012 -> 2 x 0.005 = 0.01 (error 0.002)
    q = np.array([[50, 2], [-100, 100]], np.int8)
    path = _dq(tmp_path / "a.onnx", q, np.array([0.02, 0.005]), np.zeros(2, np.int8))
    assert weight_error_report(original, path).max_abs == pytest.approx(0.002)


def test_float16_and_codebook(original: Path, tmp_path: Path) -> None:
    half = _matmul(
        tmp_path / "h.onnx",
        [helper.make_node("Cast", ["w_fp16"], ["w"], to=TensorProto.FLOAT)],
        [numpy_helper.from_array(WEIGHT.astype(np.float16), "w_fp16")],
    )
    expected = np.abs(WEIGHT - WEIGHT.astype(np.float16).astype(np.float32))
    report = weight_error_report(original, half)
    assert report.tensors[0].kind == "float16"
    assert report.max_abs == pytest.approx(float(expected.max()))
    # uint8 indices behind a Cast, as cluster_weights stores them
    codebook = np.array([-2.0, 0.0, 0.5, 1.0], np.float32)
    indices = np.array([[3, 1], [0, 2]], np.uint8)  # 1.0, 0.0, -2.0, 0.5: only 0.012 is off
    clustered = _matmul(
        tmp_path / "c.onnx",
        [
            helper.make_node("Cast", ["w_indices"], ["w_idx"], to=TensorProto.INT32),
            helper.make_node("Gather", ["w_codebook", "w_idx"], ["w"], axis=0),
        ],
        [
            numpy_helper.from_array(codebook, "w_codebook"),
            numpy_helper.from_array(indices, "w_indices"),
        ],
    )
    report = weight_error_report(original, clustered)
    assert report.tensors[0].kind == "codebook"
    assert (report.mean_abs, report.max_abs) == pytest.approx((0.012 / 4, 0.012))


@pytest.mark.parametrize("bits", [4, 8])
@pytest.mark.parametrize("symmetric", [False, True])
def test_matmul_nbits_decoding_matches_onnxruntime(bits: int, symmetric: bool) -> None:
    """ORT's own packer, then ORT's own kernel on A = I: its output is the dequantized B."""
    from onnxruntime.capi import _pybind_state as ort_c

    k, n, block = 40, 6, 16  # K not a multiple of the block: the last block is padded
    weight = np.random.default_rng(0).standard_normal((k, n)).astype(np.float32)
    blocks, per_byte = -(-k // block), 8 // bits
    packed = np.zeros((n, blocks, block // per_byte), np.uint8)
    zero_points = np.zeros((n, -(-blocks // per_byte)), np.uint8)
    scales = np.zeros((n, blocks), np.float32)
    padded = np.pad(weight, ((0, blocks * block - k), (0, 0)))
    quantize = getattr(ort_c, f"quantize_matmul_{bits}bits")
    quantize(packed, padded, scales, zero_points, block, n, k, symmetric)
    inits = [
        numpy_helper.from_array(packed, f"w_Q{bits}"),
        numpy_helper.from_array(scales.ravel(), "w_scales"),
    ]
    if not symmetric:
        inits.append(numpy_helper.from_array(zero_points.ravel(), "w_zero_points"))
    attrs = {"K": k, "N": n, "bits": bits, "block_size": block}
    inputs = ["a", *(t.name for t in inits)]
    node = helper.make_node("MatMulNBits", inputs, ["y"], domain="com.microsoft", **attrs)
    graph = helper.make_graph(
        [node],
        "nbits",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [k, k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [k, n])],
        inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    kernel = session.run(None, {"a": np.eye(k, dtype=np.float32)})[0]
    (decoded,) = dequantized_weights(model)
    assert decoded.values.shape == (k, n) and decoded.candidates == ("w",)
    np.testing.assert_array_equal(decoded.values, kernel)


def test_ort_dynamic_quantization_rows(tmp_path: Path) -> None:
    conv = build_conv_net(tmp_path / "conv.onnx")
    quantized = tmp_path / "conv-int8.onnx"
    ops = ["Conv", "MatMul"]
    quantize_dynamic(conv, quantized, op_types_to_quantize=ops, weight_type=QuantType.QInt8)
    report = weight_error_report(conv, quantized)
    rows = {row.name: row for row in report.tensors}
    assert set(rows) == {"conv1.weight", "conv2.weight", "fc.weight"} and not report.unmatched
    assert rows["conv1.weight"].kind == "ConvInteger"
    # ORT stores Gemm's B transposed ("fc.weight_Transposed_quantized"): matched back, [10, 32]
    assert rows["fc.weight"].kind == "MatMulInteger" and rows["fc.weight"].shape == [10, 32]
    model = onnx.load(str(quantized))
    scales = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for row in report.tensors:
        # round to nearest: never more than half a step off
        step = scales[row.stored_as.removesuffix("_quantized") + "_scale"].max()
        assert 0 < row.max_abs <= step / 2 + 1e-7
    errors = [row.relative_error for row in report.tensors]
    assert errors == sorted(errors, reverse=True)


def test_node_sensitivity_finds_the_damaged_layer(tmp_path: Path) -> None:
    mlp = build_mlp(tmp_path / "mlp.onnx", sizes=(32, 64, 64, 16))
    quantized = tmp_path / "int8.onnx"
    quantize_dynamic(mlp, quantized)
    model = onnx.load(str(quantized))
    rng = np.random.default_rng(0)
    for tensor in model.graph.initializer:
        if tensor.name == "fc1.weight_quantized":  # the middle layer: scrambled
            noise = rng.integers(-127, 127, size=tuple(tensor.dims), dtype=np.int8)
            tensor.CopyFrom(numpy_helper.from_array(noise, tensor.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    samples = [{"input": rng.standard_normal((2, 32)).astype(np.float32)} for _ in range(4)]

    healthy = [r.model_dump() for r in node_sensitivity(mlp, quantized, samples)]
    assert [r["tensor"] for r in healthy] and all(r["relative_error"] < 0.05 for r in healthy)
    assert {r["op_type"] for r in healthy} == {"MatMulInteger"}

    rows = [r.model_dump() for r in node_sensitivity(mlp, broken, samples)]
    by_node = {r["node"]: r for r in rows}
    assert by_node["fc1/MatMul_quant"]["tensor"] == "fc1.mm"
    assert by_node["fc1/MatMul_quant"]["relative_error"] > 0.5
    # before the damage nothing changed (last, as the least hurt); after it, it is carried on
    assert rows[-1]["node"] == "fc0/MatMul_quant" and rows[-1]["relative_error"] < 0.05
    assert by_node["fc2/MatMul_quant"]["relative_error"] > 0.5
    errors = [r["relative_error"] for r in rows]
    assert errors == sorted(errors, reverse=True)


def test_node_sensitivity_on_static_qdq_compares_after_requantization(tmp_path: Path) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    conv = build_conv_net(tmp_path / "conv.onnx")
    rng = np.random.default_rng(0)
    samples = [{"image": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(4)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    qdq = tmp_path / "qdq.onnx"
    quantize_static(conv, qdq, Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
    rows = {r.node: r.model_dump() for r in node_sensitivity(conv, qdq, samples)}
    # ORT folds each Relu into the Q -> DQ range: the DQ output is what equals the Relu output
    assert rows["conv1"]["tensor"] == "r1"
    assert rows["conv1"]["compared_with"] == "r1_DequantizeLinear_Output"
    assert all(r["relative_error"] < 0.1 for r in rows.values())
