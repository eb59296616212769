"""factorize_low_rank: each large weight becomes two products of rank r, fewer params and MACs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from app.compression.errors import PassError
from app.compression.passes.factorize_low_rank import FactorizeLowRankConfig, FactorizeLowRankPass
from tests.builders import (
    build_cnn_residual,
    build_mlp,
    build_transformer_block,
    cosine,
    count_macs,
    run_model,
)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("lowrank")


def _inits(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def _check_factors(out: Path, layers: list[dict]) -> None:
    weights = _inits(out)
    for layer in layers:
        rank = layer["rank"]
        first, second = (weights[name] for name in layer["factors"])
        k, n = layer["shape"]
        assert first.shape == (k, rank) and second.shape == (rank, n)
        assert np.linalg.matrix_rank(first @ second) == rank
        assert layer["params_after"] == rank * (k + n) < k * n


@pytest.mark.parametrize(("config", "cos"), [({}, 0.8), ({"rank_ratio": 0.25}, 0.95)])
def test_transformer(config: dict, cos: float, folder: Path, tmp_path: Path) -> None:
    source = build_transformer_block(folder / "transformer.onnx")
    out = tmp_path / "factorized.onnx"
    report = FactorizeLowRankPass().run(source, FactorizeLowRankConfig(**config), out)
    onnx.checker.check_model(str(out), full_check=True)
    layers = report.details["layers"]
    assert len(layers) == 6  # q, k, v, o and both FFN weights
    if config:
        assert {layer["rank"] for layer in layers} == {16}
    else:
        assert all(layer["kept_energy"] >= 0.9 for layer in layers)
    _check_factors(out, layers)
    graph = onnx.load(str(out)).graph
    assert sum(n.op_type == "MatMul" for n in graph.node) == 6 * 2 + 2  # + QK and PV
    assert report.details["params_after"] < 0.5 * report.details["params_before"]
    assert count_macs(out, (1, 16, 64)) < 0.6 * count_macs(source, (1, 16, 64))
    feed = np.random.default_rng(4).standard_normal((4, 16, 64)).astype(np.float32)
    assert cosine(run_model(source, feed), run_model(out, feed)) > cos


def test_mlp_rank_ratio(folder: Path, tmp_path: Path) -> None:
    source = build_mlp(folder / "mlp.onnx")
    out = tmp_path / "factorized.onnx"
    report = FactorizeLowRankPass().run(source, FactorizeLowRankConfig(rank_ratio=0.25), out)
    _check_factors(out, report.details["layers"])
    assert [layer["rank"] for layer in report.details["layers"]] == [64, 256, 64]
    assert count_macs(out, (1, 256)) < 0.5 * count_macs(source, (1, 256))
    feed = np.random.default_rng(5).standard_normal((4, 256)).astype(np.float32)
    # Random weights have a flat spectrum: a quarter of the rank keeps only part of the signal.
    assert cosine(run_model(source, feed), run_model(out, feed)) > 0.4


def test_gemm_with_alpha_beta_and_bias_is_exact_at_full_energy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((48, 3)) @ rng.standard_normal((3, 40))).astype(np.float32)
    inits = [
        numpy_helper.from_array(weight, "w"),  # [N, K] with transB = 1
        numpy_helper.from_array(rng.standard_normal(48).astype(np.float32), "bias"),
    ]
    node = helper.make_node("Gemm", ["x", "w", "bias"], ["y"], "fc", transB=1, alpha=0.5, beta=2.0)
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 40])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 48])],
        inits,
    )
    source = tmp_path / "gemm.onnx"
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(source))
    out = tmp_path / "factorized.onnx"
    config = FactorizeLowRankConfig(energy=1.0, min_params=1)
    report = FactorizeLowRankPass().run(source, config, out)
    assert report.details["layers"][0]["rank"] == 3
    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Gemm", "Gemm"]
    feed = rng.standard_normal((5, 40)).astype(np.float32)
    np.testing.assert_allclose(run_model(out, feed), run_model(source, feed), atol=1e-3)


def test_nothing_qualifies(folder: Path, tmp_path: Path) -> None:
    cnn = build_cnn_residual(folder / "cnn.onnx")
    with pytest.raises(PassError) as err:
        FactorizeLowRankPass().run(cnn, FactorizeLowRankConfig(), tmp_path / "out.onnx")
    assert err.value.code == "nothing_to_factorize" and "min_params" in err.value.message
    mlp = build_mlp(folder / "mlp_small.onnx", sizes=(64, 64))
    with pytest.raises(PassError) as err:  # a random 64x64 weight needs most of its rank
        FactorizeLowRankPass().run(mlp, FactorizeLowRankConfig(energy=0.99), tmp_path / "o.onnx")
    assert "would not shrink" in err.value.message


def test_config_takes_one_criterion() -> None:
    assert FactorizeLowRankConfig().energy == 0.9
    assert FactorizeLowRankConfig(rank_ratio=0.5).energy is None
    for bad in ({"energy": 0.9, "rank_ratio": 0.5}, {"energy": 0}, {"rank_ratio": 1.0}):
        with pytest.raises(ValidationError):
            FactorizeLowRankConfig(**bad)
