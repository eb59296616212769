"""latency_stats against hand-computed values; benchmark_pair's and benchmark_single's blocks."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydantic import ValidationError

from app.compression.measure.benchmark import (
    MeasureOptions,
    benchmark_pair,
    benchmark_single,
    latency_stats,
)
from app.compression.measure.latency import resolve_providers
from app.compression.measure.metrics import LatencyStats
from tests.builders import build_mlp

FAST = {"runs": 5, "warmup": 1, "threads": 1, "time_budget_s": 5.0, "measure_memory": False}


def fast(**overrides: Any) -> MeasureOptions:
    return MeasureOptions(**{**FAST, **overrides})


BLOCK_KEYS = [
    "size_bytes",
    "param_count",
    "flops",
    "input_shapes",
    "latency_ms",
    "runs",
    "load_ms",
    "throughput_per_s",
    "batch_size",
]
MLP_MACS = 256 * 1024 + 1024 * 1024 + 1024 * 256  # per sample, the default MLP's three MatMuls


def test_latency_stats_hand_computed() -> None:
    # sorted 1, 2, 3, 4, 10: rank p*(n-1) -> p90 at 3.6 = 4 + 0.6 * 6, p99 at 3.96 = 4 + 0.96 * 6
    # mean 4; squared deviations 9+4+1+0+36 = 50; sample variance 50 / 4 = 12.5
    stats = latency_stats([4.0, 1.0, 10.0, 3.0, 2.0])
    assert stats.p50 == pytest.approx(3.0)
    assert stats.p90 == pytest.approx(7.6)
    assert stats.p99 == pytest.approx(9.76)
    assert stats.mean == pytest.approx(4.0)
    assert stats.std == pytest.approx(math.sqrt(12.5))
    assert stats.cv == pytest.approx(math.sqrt(12.5) / 4.0)


def test_latency_stats_two_and_one_samples() -> None:
    two = latency_stats([2.0, 4.0])
    assert (two.p50, two.p90, two.mean) == pytest.approx((3.0, 3.8, 3.0))
    assert two.std == pytest.approx(math.sqrt(2.0))
    assert latency_stats([5.0]) == LatencyStats(
        p50=5.0, p90=5.0, p99=5.0, mean=5.0, std=0.0, cv=0.0
    )
    with pytest.raises(ValueError):
        latency_stats([])


def test_benchmark_pair_block(mlp_path: Path) -> None:
    measured = benchmark_pair(
        mlp_path, mlp_path, fast(input_shapes={"input": [2, 256]}, fidelity_samples=2)
    )
    # what a job stores: plain JSON, absent values left out rather than null
    metrics = measured.metrics.model_dump(mode="json", exclude_none=True)
    json.dumps(metrics, allow_nan=False)
    assert metrics == measured.metrics.model_dump(mode="json")
    for side in ("original", "compressed"):
        block = metrics[side]
        assert set(block) == set(BLOCK_KEYS)
        assert set(block["latency_ms"]) == {"p50", "p90", "p99", "mean", "std", "cv"}
        assert block["runs"] == 5 and block["load_ms"] > 0 and block["batch_size"] == 2
        assert block["input_shapes"] == {"input": [2, 256]}  # the shapes it was timed at
        assert block["flops"] == 2 * MLP_MACS
        # two samples per run: throughput counts samples, from the mean run time
        assert block["throughput_per_s"] == pytest.approx(2000 / block["latency_ms"]["mean"])
    assert metrics["compression_ratio"] == 1.0
    assert metrics["speedup_ratio"] == pytest.approx(
        metrics["original"]["latency_ms"]["p50"] / metrics["compressed"]["latency_ms"]["p50"]
    )
    assert (metrics["pruning_rate"], metrics["sparsity"]) == (0.0, 0.0)
    # identical outputs: SQNR would be infinite, so it is left out rather than invented
    assert metrics["fidelity"] == {
        "max_abs_error": 0.0,
        "mean_abs_error": 0.0,
        "cosine_similarity": 1.0,
        "relative_error": 0.0,
        "top1_agreement": 1.0,
        "samples": 2,
        "inputs": "synthetic",
    }
    assert "accuracy" not in metrics and "quantization_error" not in metrics
    assert measured.weights == []  # the same file twice: no compressed weight to compare
    host = metrics["host"]
    assert host["cores"] == 1 and host["provider"] == "CPUExecutionProvider"
    assert host["cpu"] and host["onnxruntime"] == ort.__version__


def test_time_budget_bounds_runs_and_slower_model_warns(mlp_path: Path, tmp_path: Path) -> None:
    slow = build_mlp(tmp_path / "slow.onnx", sizes=(256, 2048, 2048, 256), seed=1)
    options = fast(runs=1000, time_budget_s=0.0, fidelity_samples=1)
    metrics = benchmark_pair(mlp_path, slow, options).metrics
    assert metrics.original.runs == metrics.compressed.runs == 1
    assert metrics.compression_ratio < 1
    assert metrics.speedup_ratio < 1
    assert metrics.warnings is not None
    assert any("slower than the original" in w for w in metrics.warnings)
    assert any("diverge" in w for w in metrics.warnings)  # other weights, other outputs


def test_peak_memory_is_measured_per_model(mlp_path: Path, tmp_path: Path) -> None:
    big = build_mlp(tmp_path / "big.onnx", sizes=(256, 2048, 2048, 256))
    # The probes share the time budget: one that leaves them time even on a busy machine.
    roomy = fast(measure_memory=True, time_budget_s=30.0)
    small_block = benchmark_single(mlp_path, roomy)
    big_block = benchmark_single(big, roomy)
    for block, path in ((small_block, mlp_path), (big_block, big)):
        assert block.peak_rss_mb is not None and block.rss_before_load_mb is not None
        # the child's growth from loading and running holds at least the weights
        assert block.peak_rss_mb - block.rss_before_load_mb > path.stat().st_size / 2**20
    assert small_block.peak_rss_mb is not None and big_block.peak_rss_mb is not None
    extra_weights_mb = (big.stat().st_size - mlp_path.stat().st_size) / 2**20  # ~14 MiB
    assert big_block.peak_rss_mb - small_block.peak_rss_mb > 0.8 * extra_weights_mb


def test_throughput_by_batch_only_with_a_batch_axis(mlp_path: Path, tmp_path: Path) -> None:
    block = benchmark_single(mlp_path, fast(batch_sizes=[1, 4])).model_dump(mode="json")
    assert set(block["throughput_by_batch"]) == {"1", "4"}
    assert all(v > 0 for v in block["throughput_by_batch"].values())
    assert block["flops"] == MLP_MACS and block["batch_size"] == 1
    fixed = _scale_model(tmp_path / "fixed.onnx", batch=1)
    block = benchmark_single(fixed, fast(batch_sizes=[1, 4])).model_dump(mode="json")
    assert "throughput_by_batch" not in block and "batch_size" not in block
    assert any("batch_sizes ignored" in w for w in block["warnings"])


def _scale_model(path: Path, factor: float = 1.0, batch: int | str = "batch") -> Path:
    """y = x * factor on [batch, 3]."""
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["y"])],
        "scale",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        [numpy_helper.from_array(np.array(factor, np.float32), "k")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_float_targets_give_mse_and_mae(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    data = tmp_path / "eval.npz"
    np.savez(data, x=x, labels=x + 1.0)  # identity model: off by exactly 1 everywhere
    single = benchmark_single(_scale_model(tmp_path / "id.onnx"), fast(eval_dataset_path=data))
    assert single.model_dump(mode="json")["accuracy"] == {
        "metric": "mse", "value": 1.0, "mae": 1.0, "samples": 4,
    }  # fmt: skip
    # doubled: errors x - 1 = -1 .. 10, so mse = mean((x - 1)^2), mae = mean(|x - 1|)
    doubled = _scale_model(tmp_path / "x2.onnx", factor=2.0)
    measured = benchmark_pair(tmp_path / "id.onnx", doubled, fast(eval_dataset_path=data))
    metrics = measured.metrics.model_dump(mode="json")
    errors = x.ravel() - 1.0
    accuracy = metrics["accuracy"]
    assert accuracy["metric"] == "mse" and accuracy["samples"] == 4
    assert accuracy["original"] == 1.0
    assert accuracy["compressed"] == pytest.approx(float(np.mean(errors**2)))
    assert accuracy["delta"] == pytest.approx(accuracy["compressed"] - 1.0)
    assert accuracy["mae"]["compressed"] == pytest.approx(float(np.mean(np.abs(errors))))
    assert metrics["fidelity"]["inputs"] == "dataset" and metrics["fidelity"]["samples"] == 4
    # scaling by 2 keeps the direction: cosine 1 although every value is off
    assert metrics["fidelity"]["cosine_similarity"] == pytest.approx(1.0)


def test_options_are_checked(mlp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown input"):
        benchmark_pair(mlp_path, mlp_path, fast(input_shapes={"x": [1]}))
    with pytest.raises(ValidationError, match="graph_optimization_level"):
        fast(graph_optimization_level="max")
    with pytest.raises(ValidationError, match="provider"):
        fast(provider="NoSuchExecutionProvider")
    with pytest.raises(ValueError, match="not available"):
        resolve_providers("NoSuchExecutionProvider")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="'cuda' is not available"):
            benchmark_single(mlp_path, fast(provider="cuda"))
    with pytest.raises(ValidationError, match="batch_sizes"):
        fast(batch_sizes=[0])
    with pytest.raises(ValidationError, match="runs"):
        fast(runs=0)
    block = benchmark_single(mlp_path, fast(graph_optimization_level="disable"))
    assert block.host is not None and block.host.provider == "CPUExecutionProvider"
