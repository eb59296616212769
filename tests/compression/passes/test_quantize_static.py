"""quantize_static: QDQ/QOperator output, calibration sources, messy models, config checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from pydantic import ValidationError

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.graph.analysis import inspect_model
from app.compression.passes.base import PassContext
from app.compression.passes.quantize_static import QuantizeStaticConfig, QuantizeStaticPass
from tests.builders import (
    build_cnn_residual,
    build_conv_net,
    build_mlp,
    build_transformer_block,
    cosine,
    run_model,
)
from tests.builders_messy import (
    build_constant_weights_net,
    build_if_subgraph_mlp,
    build_opset11_cnn,
)

IMAGE32 = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)
IMAGE16 = np.random.default_rng(2).standard_normal((4, 3, 16, 16)).astype(np.float32)
VECTOR = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
FAST = {"num_samples": 16}
SYNTHETIC = "weaker guess"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("static")
    paths = {
        "conv": build_conv_net(folder / "conv.onnx"),
        "mlp": build_mlp(folder / "mlp.onnx", sizes=(64, 128, 32)),
        "constant": build_constant_weights_net(folder / "constant.onnx"),
        "opset11": build_opset11_cnn(folder / "opset11.onnx"),
        "if": build_if_subgraph_mlp(folder / "if.onnx"),
        "residual": build_cnn_residual(folder / "residual.onnx"),
        "transformer": build_transformer_block(folder / "transformer.onnx"),
    }
    return paths


def _weight_dequantizers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Scale of every DequantizeLinear fed by an initializer (a quantized weight)."""
    inits = {t.name: t for t in model.graph.initializer}
    return {
        n.input[0]: numpy_helper.to_array(inits[n.input[1]])
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.input[0] in inits
    }


def test_qdq_per_channel_cnn(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "conv_qdq.onnx"
    report = QuantizeStaticPass().run(models["conv"], QuantizeStaticConfig(**FAST), out)
    ops = inspect_model(out).op_counts
    assert ops["QuantizeLinear"] == report.details["quantize_linear"] >= 4
    assert ops["DequantizeLinear"] == report.details["dequantize_linear"] > ops["QuantizeLinear"]
    assert report.details["nodes_quantized"] == 5  # 2 Conv, GAP, Flatten, Gemm
    scales = _weight_dequantizers(onnx.load(str(out)))
    assert scales["conv1.weight_quantized"].shape == (16,)  # one scale per output channel
    assert scales["conv2.weight_quantized"].shape == (32,)
    assert report.details["calibration"] == {
        "source": "synthetic",
        "samples": 16,
        "method": "minmax",
    }
    assert any(SYNTHETIC in w for w in report.warnings)
    assert report.details["weight_bytes_after"] < report.details["weight_bytes_before"] / 3
    assert cosine(run_model(out, IMAGE32), run_model(models["conv"], IMAGE32)) > 0.999


def test_dataset_calibration(models: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "calib.npz"
    np.savez(data, image=np.random.default_rng(5).standard_normal((8, 3, 32, 32)).astype("f4"))
    out = tmp_path / "conv_data.onnx"
    report = QuantizeStaticPass().run(
        models["conv"], QuantizeStaticConfig(), out, PassContext(calibration_path=data)
    )
    assert report.details["calibration"]["source"] == "dataset"
    assert report.details["calibration"]["samples"] == 8  # all the dataset has, not 64
    assert not any(SYNTHETIC in w for w in report.warnings)
    assert cosine(run_model(out, IMAGE32), run_model(models["conv"], IMAGE32)) > 0.999


def test_qoperator_format(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mlp_qop.onnx"
    config = QuantizeStaticConfig(format="qoperator", calibration_method="percentile", **FAST)
    report = QuantizeStaticPass().run(models["mlp"], config, out)
    ops = inspect_model(out).op_counts
    # quant_pre_process fuses MatMul+Add into Gemm first, which QOperator turns into QGemm.
    assert ops["QGemm"] == 2 and not {"MatMul", "Gemm"} & set(ops)
    assert report.details["nodes_quantized"] == 2
    assert cosine(run_model(out, VECTOR[:, :64]), run_model(models["mlp"], VECTOR)) > 0.99


def test_opset11_is_upgraded_for_per_channel_qdq(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "op11_qdq.onnx"
    report = QuantizeStaticPass().run(models["opset11"], QuantizeStaticConfig(**FAST), out)
    assert report.details["prepared"] == ["upgraded the model from opset 11 to 13"]
    info = inspect_model(out)
    assert info.opset == 13 and report.details["per_channel"]
    model = onnx.load(str(out))
    axes = [
        a.i
        for n in model.graph.node
        if n.op_type == "DequantizeLinear"
        for a in n.attribute
        if a.name == "axis"
    ]
    assert axes and report.details["per_channel_scales"] >= 2
    assert cosine(run_model(out, IMAGE16), run_model(models["opset11"], IMAGE16)) > 0.999


def test_constant_weights_are_quantized(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "constant_qdq.onnx"
    report = QuantizeStaticPass().run(models["constant"], QuantizeStaticConfig(**FAST), out)
    assert report.details["prepared"] == ["folded 6 Constant node(s) into initializers"]
    assert "Constant" not in inspect_model(out).op_counts
    assert set(_weight_dequantizers(onnx.load(str(out)))) >= {"conv.weight_quantized"}
    assert cosine(run_model(out, IMAGE16), run_model(models["constant"], IMAGE16)) > 0.999


def test_if_branches_get_8bit_weights_and_outputs_stay_right(
    models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "if_qdq.onnx"
    report = QuantizeStaticPass().run(models["if"], QuantizeStaticConfig(**FAST), out)
    # Calibration cannot see inside the branches: their weights are stored in 8 bits only.
    # quant_pre_process fuses each branch's MatMul+Add into a Gemm named after the MatMul.
    names = sorted(report.details["weight_only_nodes"])
    assert [n.split("/MatMul")[0] for n in names] == ["else", "then"]
    assert report.details["subgraph_nodes_left_float"] == []
    assert any("8-bit weights only" in w for w in report.warnings)
    assert report.details["nodes_quantized"] >= 4
    branches = [
        g
        for n in onnx.load(str(out)).graph.node
        if n.op_type == "If"
        for g in (n.attribute[0].g, n.attribute[1].g)
    ]
    for branch in branches:
        assert branch.node[0].op_type == "DequantizeLinear"
        assert {t.data_type for t in branch.initializer} >= {onnx.TensorProto.INT8}
    inspect_model(out)
    # The branches read the main graph's Relu output by name: it must survive quantization.
    assert cosine(run_model(out, VECTOR), run_model(models["if"], VECTOR)) > 0.999
    with pytest.raises(PassError) as err:
        QuantizeStaticPass().run(
            models["if"], QuantizeStaticConfig(format="qoperator", **FAST), tmp_path / "q.onnx"
        )
    assert err.value.code == "quantization_failed" and "qdq" in err.value.message


def test_residual_cnn_and_transformer(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "residual.onnx"
    QuantizeStaticPass().run(models["residual"], QuantizeStaticConfig(**FAST), out)
    assert inspect_model(out).op_counts["QuantizeLinear"] >= 5
    assert cosine(run_model(out, IMAGE32), run_model(models["residual"], IMAGE32)) > 0.99
    out = tmp_path / "transformer.onnx"
    config = QuantizeStaticConfig(calibration_method="entropy", **FAST)
    report = QuantizeStaticPass().run(models["transformer"], config, out)
    assert report.details["op_counts_after"]["DequantizeLinear"] >= 6
    tokens = np.random.default_rng(4).standard_normal((2, 16, 64)).astype(np.float32)
    assert cosine(run_model(out, tokens), run_model(models["transformer"], tokens)) > 0.98


def test_nothing_to_quantize(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "none.onnx"
    with pytest.raises(PassError) as err:
        QuantizeStaticPass().run(
            models["mlp"], QuantizeStaticConfig(op_types=["Conv"], **FAST), out
        )
    assert err.value.code == "nothing_to_quantize" and "MatMul" in err.value.message
    assert not out.exists()


def test_config_validation() -> None:
    config = QuantizeStaticConfig()
    assert (config.format, config.activation_type, config.weight_type) == ("qdq", "uint8", "int8")
    assert config.per_channel and config.num_samples == 64 and config.op_types is None
    assert QuantizeStaticConfig(op_types=["Conv", "Conv"]).op_types == ["Conv"]
    for bad in (
        {"activation_type": "int8", "weight_type": "uint8"},
        {"num_samples": 0},
        {"num_samples": 10001},
        {"calibration_method": "mse"},
        {"format": "qlinear"},
        {"op_types": ["1bad"]},
        {"reduce_range": True},
    ):
        with pytest.raises(ValidationError):
            QuantizeStaticConfig.model_validate(bad)


def test_large_models_keep_external_data(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 0)  # pretend it is near 2 GiB
    out = tmp_path / "big.onnx"
    QuantizeStaticPass().run(models["mlp"], QuantizeStaticConfig(num_samples=4), out)
    assert inspect_model(out).has_external_data and (tmp_path / "big.onnx.data").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    assert cosine(run_model(out, VECTOR), run_model(models["mlp"], VECTOR)) > 0.99
