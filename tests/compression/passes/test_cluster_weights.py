"""cluster_weights: at most K values per tensor, uint8 indices + codebook, a smaller file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from pydantic import ValidationError

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.passes.cluster_weights import (
    ClusterWeightsConfig,
    ClusterWeightsPass,
    kmeans_1d,
)
from app.compression.passes.prune_magnitude import PruneMagnitudeConfig, PruneMagnitudePass
from tests.builders import (
    build_cnn_residual,
    build_conv_net,
    build_mlp,
    build_transformer_block,
    cosine,
    run_model,
)

MODELS: dict[str, tuple[Callable[[Path], Path], tuple[int, ...], int, float]] = {
    "mlp": (build_mlp, (4, 256), 3, 0.3),
    "cnn": (build_cnn_residual, (4, 3, 32, 32), 3, 0.6),
    "transformer": (build_transformer_block, (4, 16, 64), 6, 0.35),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cluster")
    return {name: spec[0](folder / f"{name}.onnx") for name, spec in MODELS.items()}


def _decoded(path: Path) -> dict[str, np.ndarray]:
    """Every clustered weight as the model computes it: codebook[indices]."""
    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    decoded = {}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[0].endswith("_codebook"):
            base = node.output[0]
            indices = inits[f"{base}_indices"]
            assert indices.data_type == TensorProto.UINT8
            codebook = numpy_helper.to_array(inits[node.input[0]])
            decoded[base] = codebook[numpy_helper.to_array(indices)]
    return decoded


@pytest.mark.parametrize("name", sorted(MODELS))
def test_cluster(name: str, models: dict[str, Path], tmp_path: Path) -> None:
    _, shape, tensors, size_ratio = MODELS[name]
    source, out = models[name], tmp_path / "clustered.onnx"
    report = ClusterWeightsPass().run(source, ClusterWeightsConfig(), out)
    onnx.checker.check_model(str(out), full_check=True)
    decoded = _decoded(out)
    assert len(decoded) == len(report.details["tensors"]) == tensors
    for row in report.details["tensors"]:
        assert len(np.unique(decoded[row["tensor"]])) == row["unique_after"] <= 16
        assert list(decoded[row["tensor"]].shape) == row["shape"]
    assert out.stat().st_size < size_ratio * source.stat().st_size
    assert report.details["size_bytes_after"] == out.stat().st_size
    feed = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    assert cosine(run_model(source, feed), run_model(out, feed)) > 0.95


def test_few_clusters_keep_pruned_zeros(models: dict[str, Path], tmp_path: Path) -> None:
    pruned = tmp_path / "pruned.onnx"
    PruneMagnitudePass().run(models["mlp"], PruneMagnitudeConfig(sparsity=0.6), pruned)
    out = tmp_path / "clustered.onnx"
    ClusterWeightsPass().run(pruned, ClusterWeightsConfig(clusters=4), out)
    for weight in _decoded(out).values():
        assert len(np.unique(weight)) <= 4
        # Deep compression: pruned weights stay exactly zero through clustering.
        assert np.mean(weight == 0) == pytest.approx(0.6, abs=1e-3)
    feed = np.random.default_rng(7).standard_normal((4, 256)).astype(np.float32)
    # 60% of the weights gone and 3 values for the rest: a coarse model, still correlated.
    assert cosine(run_model(models["mlp"], feed), run_model(out, feed)) > 0.7


def test_kmeans_is_deterministic_and_exact_on_few_values() -> None:
    values = np.random.default_rng(0).standard_normal(5000)
    first, second = kmeans_1d(values, 8), kmeans_1d(values, 8)
    np.testing.assert_array_equal(first[0], second[0])
    assert np.all(np.diff(first[0]) > 0)
    # Lloyd's iterations beat the evenly spaced grid they start from.
    grid = np.linspace(values.min(), values.max(), 8)
    nearest = grid[np.abs(values[:, None] - grid).argmin(axis=1)]
    assert np.abs(first[0][first[1]] - values).mean() < 0.8 * np.abs(nearest - values).mean()
    few = np.array([0.5, -1.0, 0.5, 2.0])
    codebook, index = kmeans_1d(few, 8)
    np.testing.assert_array_equal(codebook[index], few)


def test_nothing_to_cluster(tmp_path: Path) -> None:
    source = build_conv_net(tmp_path / "conv.onnx")
    with pytest.raises(PassError) as err:
        ClusterWeightsPass().run(
            source, ClusterWeightsConfig(min_params=10**6), tmp_path / "out.onnx"
        )
    assert err.value.code == "nothing_to_cluster" and "min_params" in err.value.message


@pytest.mark.parametrize("bad", [{"clusters": 1}, {"clusters": 257}, {"op_types": []}])
def test_bad_config(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ClusterWeightsConfig(**bad)


def test_large_models_keep_external_data(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 0)  # pretend it is > 2 GiB
    out = tmp_path / "big.onnx"
    report = ClusterWeightsPass().run(models["cnn"], ClusterWeightsConfig(), out)
    assert (tmp_path / "big.onnx.data").exists()
    assert report.details["size_bytes_after"] < report.details["size_bytes_before"]
    feed = np.random.default_rng(8).standard_normal((2, 3, 32, 32)).astype(np.float32)
    assert cosine(run_model(models["cnn"], feed), run_model(out, feed)) > 0.95
