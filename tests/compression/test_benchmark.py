"""latency_stats against hand-computed values; benchmark_pair's metrics block."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from app.compression.benchmark import benchmark_pair, latency_stats
from tests.builders import build_mlp


def test_latency_stats_hand_computed() -> None:
    # sorted 1, 2, 3, 4, 10: rank p*(n-1) -> p90 at 3.6 = 4 + 0.6 * 6, p99 at 3.96 = 4 + 0.96 * 6
    # mean 4; squared deviations 9+4+1+0+36 = 50; sample variance 50 / 4 = 12.5
    stats = latency_stats([4.0, 1.0, 10.0, 3.0, 2.0])
    assert stats["p50"] == pytest.approx(3.0)
    assert stats["p90"] == pytest.approx(7.6)
    assert stats["p99"] == pytest.approx(9.76)
    assert stats["mean"] == pytest.approx(4.0)
    assert stats["std"] == pytest.approx(math.sqrt(12.5))
    assert stats["cv"] == pytest.approx(math.sqrt(12.5) / 4.0)


def test_latency_stats_two_and_one_samples() -> None:
    two = latency_stats([2.0, 4.0])
    assert (two["p50"], two["p90"], two["mean"]) == pytest.approx((3.0, 3.8, 3.0))
    assert two["std"] == pytest.approx(math.sqrt(2.0))
    assert latency_stats([5.0]) == {
        "p50": 5.0,
        "p90": 5.0,
        "p99": 5.0,
        "mean": 5.0,
        "std": 0.0,
        "cv": 0.0,
    }
    with pytest.raises(ValueError):
        latency_stats([])


def test_benchmark_pair_block(mlp_path: Path) -> None:
    metrics = benchmark_pair(
        mlp_path,
        mlp_path,
        input_shapes={"input": [2, 256]},
        runs=5,
        warmup=1,
        threads=1,
        time_budget_s=5.0,
        fidelity_samples=2,
    )
    json.dumps(metrics, allow_nan=False)
    for side in ("original", "compressed"):
        assert set(metrics[side]) == {"size_bytes", "param_count", "latency_ms", "load_ms", "runs"}
        assert set(metrics[side]["latency_ms"]) == {"p50", "p90", "p99", "mean", "std", "cv"}
        assert metrics[side]["runs"] == 5 and metrics[side]["load_ms"] > 0
    assert metrics["compression_ratio"] == 1.0
    assert metrics["fidelity"] == {
        "max_abs_error": 0.0,
        "mean_abs_error": 0.0,
        "cosine_similarity": 1.0,
        "samples": 2,
    }
    assert metrics["host"]["cores"] == 1
    assert metrics["host"]["provider"] == "CPUExecutionProvider"
    assert metrics["host"]["cpu"] and metrics["host"]["onnxruntime"]


def test_time_budget_bounds_runs_and_slower_model_warns(mlp_path: Path, tmp_path: Path) -> None:
    slow = build_mlp(tmp_path / "slow.onnx", sizes=(256, 2048, 2048, 256), seed=1)
    metrics = benchmark_pair(
        mlp_path,
        slow,
        input_shapes=None,
        runs=1000,
        warmup=1,
        threads=1,
        time_budget_s=0.0,
        fidelity_samples=1,
    )
    assert metrics["original"]["runs"] == metrics["compressed"]["runs"] == 1
    assert metrics["compression_ratio"] < 1
    assert metrics["speedup_ratio"] < 1
    assert any("slower than the original" in w for w in metrics["warnings"])


def test_bad_input_shapes(mlp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown input"):
        benchmark_pair(
            mlp_path,
            mlp_path,
            input_shapes={"x": [1]},
            runs=1,
            warmup=0,
            threads=1,
            time_budget_s=1.0,
        )
