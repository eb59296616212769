"""quantize_weight_only: MatMulNBits on MatMul/Gemm weights, skipped layers, messy models."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from pydantic import ValidationError

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.graph.analysis import inspect_model
from app.compression.passes.quantize_weight_only import (
    QuantizeWeightOnlyConfig,
    QuantizeWeightOnlyPass,
)
from tests.builders import build_conv_net, build_mlp, build_transformer_block, cosine, run_model
from tests.builders_messy import build_constant_weights_net, build_if_subgraph_mlp

VECTOR = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)
IMAGE16 = np.random.default_rng(2).standard_normal((4, 3, 16, 16)).astype(np.float32)
IMAGE32 = np.random.default_rng(1).standard_normal((4, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("weight_only")
    paths = {
        "mlp": build_mlp(folder / "mlp.onnx", sizes=(64, 256, 64)),
        "conv": build_conv_net(folder / "conv.onnx"),
        "constant": build_constant_weights_net(folder / "constant.onnx"),
        "if": build_if_subgraph_mlp(folder / "if.onnx"),
        "transformer": build_transformer_block(folder / "transformer.onnx"),
    }
    return paths


def _nbits_nodes(path: Path) -> list[onnx.NodeProto]:
    return [n for n in onnx.load(str(path)).graph.node if n.op_type == "MatMulNBits"]


def test_int4_mlp(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mlp_int4.onnx"
    report = QuantizeWeightOnlyPass().run(models["mlp"], QuantizeWeightOnlyConfig(), out)
    assert report.details["nodes_quantized"] == 2 and report.details["skipped"] == []
    nodes = _nbits_nodes(out)
    attrs = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs == {"K": 64, "N": 256, "bits": 4, "block_size": 32}
    assert "MatMul" not in inspect_model(out).op_counts
    assert report.details["weight_bytes_after"] < report.details["weight_bytes_before"] / 5
    assert models["mlp"].stat().st_size / out.stat().st_size > 4.5
    assert cosine(run_model(out, VECTOR), run_model(models["mlp"], VECTOR)) > 0.99


def test_int8_asymmetric_with_accuracy_level(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mlp_int8.onnx"
    config = QuantizeWeightOnlyConfig(bits=8, block_size=64, symmetric=False, accuracy_level=4)
    QuantizeWeightOnlyPass().run(models["mlp"], config, out)
    for node in _nbits_nodes(out):
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert (attrs["bits"], attrs["block_size"], attrs["accuracy_level"]) == (8, 64, 4)
        assert len(node.input) == 4  # zero points, since asymmetric
    inspect_model(out)
    assert cosine(run_model(out, VECTOR), run_model(models["mlp"], VECTOR)) > 0.999


def test_transformer_skips_activation_matmuls(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "transformer_int4.onnx"
    report = QuantizeWeightOnlyPass().run(models["transformer"], QuantizeWeightOnlyConfig(), out)
    assert report.details["nodes_quantized"] == 6  # q, k, v, o, ffn up, ffn down
    reasons = {s["reason"] for s in report.details["skipped"]}
    assert len(report.details["skipped"]) == 2
    assert reasons == {"weight input is not a constant initializer"}  # QK^T and PV
    assert any("2 MatMul/Gemm node(s) left in float" in w for w in report.warnings)
    tokens = np.random.default_rng(4).standard_normal((2, 16, 64)).astype(np.float32)
    assert cosine(run_model(out, tokens), run_model(models["transformer"], tokens)) > 0.97


def test_gemm_with_transposed_weight(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "conv_int4.onnx"
    report = QuantizeWeightOnlyPass().run(models["conv"], QuantizeWeightOnlyConfig(), out)
    assert report.details["gemm_rewritten_as_matmul"] == 1
    ops = inspect_model(out).op_counts
    assert ops["MatMulNBits"] == 1 and "Gemm" not in ops and ops["Conv"] == 2
    assert cosine(run_model(out, IMAGE32), run_model(models["conv"], IMAGE32)) > 0.98


def test_constant_weights_and_incompatible_k(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "constant_int4.onnx"
    report = QuantizeWeightOnlyPass().run(models["constant"], QuantizeWeightOnlyConfig(), out)
    assert report.details["prepared"] == ["folded 6 Constant node(s) into initializers"]
    assert report.details["skipped"] == [
        {"node": "fc1/MatMul", "reason": "K=16 is not a multiple of block_size 32"}
    ]
    assert report.details["nodes_quantized"] == 1  # fc2, a Gemm with K=64
    ops = inspect_model(out).op_counts
    assert ops["MatMul"] == 1 and ops["MatMulNBits"] == 1
    assert cosine(run_model(out, IMAGE16), run_model(models["constant"], IMAGE16)) > 0.99


def test_weights_inside_if_branches(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "if_int4.onnx"
    report = QuantizeWeightOnlyPass().run(models["if"], QuantizeWeightOnlyConfig(), out)
    assert report.details["nodes_quantized"] == 4
    assert report.details["subgraph_nodes_quantized"] == 2
    inspect_model(out)
    assert cosine(run_model(out, VECTOR), run_model(models["if"], VECTOR)) > 0.98


def test_nothing_fits(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "none.onnx"
    with pytest.raises(PassError) as err:
        # conv's only dense layer has K = 32: not a multiple of 128.
        QuantizeWeightOnlyPass().run(models["conv"], QuantizeWeightOnlyConfig(block_size=128), out)
    assert err.value.code == "nothing_to_quantize"
    assert "K=32 is not a multiple of block_size 128" in err.value.message
    assert not out.exists()


def test_importing_the_quantizer_leaves_logging_alone(
    models: dict[str, Path], tmp_path: Path
) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    QuantizeWeightOnlyPass().run(models["mlp"], QuantizeWeightOnlyConfig(), tmp_path / "m.onnx")
    assert root.handlers == handlers and root.level == level


def test_config_validation() -> None:
    config = QuantizeWeightOnlyConfig()
    assert (config.bits, config.block_size, config.symmetric, config.accuracy_level) == (
        4,
        32,
        True,
        None,
    )
    for bad in ({"bits": 3}, {"block_size": 48}, {"accuracy_level": 5}, {"group": 32}):
        with pytest.raises(ValidationError):
            QuantizeWeightOnlyConfig.model_validate(bad)


def test_large_models_keep_external_data(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 0)  # pretend it is near 2 GiB
    out = tmp_path / "big.onnx"
    QuantizeWeightOnlyPass().run(models["mlp"], QuantizeWeightOnlyConfig(), out)
    assert inspect_model(out).has_external_data
    assert (tmp_path / "big.onnx.data").stat().st_size > out.stat().st_size
    assert cosine(run_model(out, VECTOR), run_model(models["mlp"], VECTOR)) > 0.99
