"""The time budget bounds a whole benchmark, threads never outnumber the CPUs, and the warnings
say only what is beyond the noise, naming the side rather than a file."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from app.compression.measure.benchmark import MeasureOptions, benchmark_pair, benchmark_single
from app.compression.measure.comparison import speed_warnings
from app.compression.measure.latency import available_cpus, latency_stats
from app.compression.measure.metrics import ModelMetrics


def test_the_budget_bounds_warmup_batch_sizes_memory_and_evaluation(mlp_path: Path) -> None:
    budget_s = 2.0
    options = MeasureOptions(
        runs=10_000,
        warmup=300,
        batch_sizes=[1024],
        threads=1,
        time_budget_s=budget_s,
        input_shapes={"input": [16, 256]},
        # ~1 ms a sample on each model: more than the whole budget, whatever the other parts
        # leave (a memory probe that times out early leaves more of it to the evaluation).
        fidelity_samples=2000,
        measure_memory=True,
    )
    start = time.monotonic()
    metrics = benchmark_pair(mlp_path, mlp_path, options).metrics
    elapsed = time.monotonic() - start

    load_s = (metrics.original.load_ms + metrics.compressed.load_ms) / 1000.0
    assert elapsed < 3 * budget_s + load_s, f"took {elapsed:.1f} s on a {budget_s} s budget"
    assert metrics.original.runs >= 1 and metrics.original.runs == metrics.compressed.runs
    assert metrics.fidelity is not None and 1 <= metrics.fidelity.samples < 2000
    warnings = metrics.warnings or []
    assert any("of 2000 samples: the time budget ran out" in w for w in warnings), warnings
    # batch 1024 is either measured within the budget or left out, saying why
    measured = "1024" in (metrics.original.throughput_by_batch or {})
    assert measured or any("throughput at batch 1024 left out" in w for w in warnings), warnings


def test_threads_are_capped_at_the_cpus_the_worker_has(mlp_path: Path) -> None:
    assert available_cpus() < 256
    start = time.monotonic()
    block = benchmark_single(
        mlp_path, MeasureOptions(runs=20, threads=256, time_budget_s=2.0, measure_memory=False)
    )

    assert time.monotonic() - start < 10
    assert block.host is not None and block.host.cores == available_cpus()
    assert block.warnings is not None
    assert any(f"threads capped at {available_cpus()}" in w for w in block.warnings)


def _timed(p50_ms: float, cv: float = 0.05) -> ModelMetrics:
    stats = latency_stats([p50_ms * (1 - cv), p50_ms, p50_ms * (1 + cv)])
    return ModelMetrics(size_bytes=1, param_count=1, latency_ms=stats, runs=3, load_ms=1.0)


def test_a_speedup_within_the_noise_is_not_called_slower() -> None:
    assert speed_warnings(_timed(1.0), _timed(1.0 / 0.99)) == []
    assert speed_warnings(_timed(1.0), _timed(1.0 / 0.85)) == []

    slower = speed_warnings(_timed(1.0), _timed(1.0 / 0.7))
    assert len(slower) == 1 and "slower than the original" in slower[0]
    assert "speedup 0.70x" in slower[0]


def test_warnings_name_the_side_not_the_file(mlp_path: Path, tmp_path: Path) -> None:
    # As in the worker: both models are called model.onnx, in folders of their own.
    original, compressed = tmp_path / "baseline" / "model.onnx", tmp_path / "subject" / "model.onnx"
    for path in (original, compressed):
        path.parent.mkdir()
        shutil.copyfile(mlp_path, path)
    options = MeasureOptions(runs=3, time_budget_s=0.0, fidelity_samples=1, measure_memory=True)

    pair = benchmark_pair(original, compressed, options).metrics.warnings or []
    single = benchmark_single(compressed, options).warnings or []

    assert not any("model.onnx" in w for w in pair + single), pair + single
    assert any(w.startswith("original: peak memory not measured") for w in pair), pair
    assert any(w.startswith("compressed: peak memory not measured") for w in pair), pair
    assert any(w.startswith("model: peak memory not measured") for w in single), single
