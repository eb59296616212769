"""prune_magnitude on the MLP, the residual CNN and the transformer block."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from pydantic import ValidationError

from app.compression.errors import PassError
from app.compression.passes.prune_magnitude import PruneMagnitudeConfig, PruneMagnitudePass
from tests.builders import (
    build_cnn_residual,
    build_mlp,
    build_transformer_block,
    cosine,
    run_model,
)

MODELS: dict[str, tuple[Callable[[Path], Path], tuple[int, ...]]] = {
    "mlp": (build_mlp, (4, 256)),
    "cnn": (build_cnn_residual, (4, 3, 32, 32)),
    "transformer": (build_transformer_block, (4, 16, 64)),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("magnitude")
    return {name: build(folder / f"{name}.onnx") for name, (build, _) in MODELS.items()}


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_per_layer_sparsity(name: str, models: dict[str, Path], tmp_path: Path) -> None:
    source, out = models[name], tmp_path / "pruned.onnx"
    report = PruneMagnitudePass().run(source, PruneMagnitudeConfig(), out)
    onnx.checker.check_model(str(out), full_check=True)
    before, after = _initializers(source), _initializers(out)
    pruned = {row["tensor"] for row in report.details["tensors"]}
    assert pruned == {n for n in before if n.endswith("weight")}  # weights, never biases
    for tensor in before:
        if tensor in pruned:
            measured = np.mean(after[tensor] == 0)
            assert measured == pytest.approx(0.5, abs=1 / after[tensor].size)
            kept = after[tensor] != 0
            # The zeroed weights are the smallest ones.
            assert np.abs(before[tensor][~kept]).max() <= np.abs(before[tensor][kept]).min()
        else:
            np.testing.assert_array_equal(before[tensor], after[tensor])
    details = report.details
    assert details["achieved_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert details["pruning_rate"] == pytest.approx(
        details["pruned_params"] / details["total_params"]
    )
    assert 0.45 < details["pruning_rate"] < 0.5  # biases and BN parameters are kept
    feed = np.random.default_rng(1).standard_normal(MODELS[name][1]).astype(np.float32)
    assert cosine(run_model(source, feed), run_model(out, feed)) > 0.85


def test_global_scope_uses_one_threshold(models: dict[str, Path], tmp_path: Path) -> None:
    source, out = models["transformer"], tmp_path / "global.onnx"
    config = PruneMagnitudeConfig(sparsity=0.7, scope="global", op_types=["MatMul"])
    report = PruneMagnitudePass().run(source, config, out)
    rows = report.details["tensors"]
    assert report.details["achieved_sparsity"] == pytest.approx(0.7, abs=1e-4)
    assert len({row["sparsity"] for row in rows}) > 1  # layers lose different shares
    before, after = _initializers(source), _initializers(out)
    zeroed = np.concatenate([np.abs(before[r["tensor"]][after[r["tensor"]] == 0]) for r in rows])
    kept = np.concatenate([np.abs(before[r["tensor"]][after[r["tensor"]] != 0]) for r in rows])
    assert zeroed.max() <= kept.min()
    feed = np.random.default_rng(2).standard_normal((2, 16, 64)).astype(np.float32)
    assert cosine(run_model(source, feed), run_model(out, feed)) > 0.7


def test_no_matching_weights_fails_clearly(models: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(PassError) as err:
        PruneMagnitudePass().run(
            models["mlp"], PruneMagnitudeConfig(op_types=["Conv"]), tmp_path / "out.onnx"
        )
    assert err.value.code == "nothing_to_prune" and "Conv" in err.value.message


@pytest.mark.parametrize(
    "bad", [{"sparsity": 1.0}, {"sparsity": 0}, {"scope": "layer"}, {"op_types": ["Relu"]}]
)
def test_bad_config(bad: dict) -> None:
    with pytest.raises(ValidationError):
        PruneMagnitudeConfig(**bad)
