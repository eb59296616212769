"""Side-by-side benchmark of an original and a compressed model: the job's metrics block."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.compression.graph.analysis import (
    TensorSpec,
    graph_inputs,
    load_proto,
    model_size_bytes,
    param_count,
)
from app.compression.graph.inputs import constant_inputs, resolve_input_shapes, synthetic_inputs
from app.compression.measure import fidelity
from app.compression.measure.comparison import compare_pair
from app.compression.measure.flops import count_flops
from app.compression.measure.latency import (
    cpu_name,
    host_info,
    latency_stats,
    open_session,
    resolve_providers,
    throughput_per_s,
    timed_runs,
)
from app.compression.measure.memory import MemoryMeasurementError, measure_peak_rss
from app.compression.measure.metrics import ModelMetrics, PairMeasurement
from app.compression.measure.options import MeasureOptions

__all__ = ["MeasureOptions", "benchmark_pair", "benchmark_single", "cpu_name", "latency_stats"]


@dataclass
class _Run:
    """What timing both models produced, for the comparison and the per-model blocks."""

    blocks: list[ModelMetrics]
    sessions: list[Any]
    dtypes: list[dict[str, str]]
    specs: list[TensorSpec]
    shapes: dict[str, list[int]]
    warnings: list[str] = field(default_factory=list)


def _static(
    path: Path, shapes: dict[str, list[int]], default_dim: int
) -> tuple[dict[str, int], list[str]]:
    """size_bytes, param_count and flops (MACs, as the contract's "flops" means) of one file."""
    model = load_proto(path)
    sizes = {"size_bytes": model_size_bytes(path, model), "param_count": param_count(model)}
    flops = count_flops(model, shapes, default_dim)
    if "total_macs" in flops:
        return {**sizes, "flops": flops["total_macs"]}, []
    return sizes, [f"{path.name}: flops left out, shapes unknown at {flops['unresolved'][:5]}"]


def _with_batch(shapes: dict[str, list[int]], batch: int) -> dict[str, list[int]]:
    return {name: [batch, *shape[1:]] for name, shape in shapes.items()}


def _measure(paths: list[Path], o: MeasureOptions) -> _Run:
    """Load, time interleaved, throughput per batch size and peak memory of each model."""
    providers = resolve_providers(o.provider)
    specs = [graph_inputs(load_proto(p)) for p in paths]
    if any({s.name for s in side} != {s.name for s in specs[0]} for side in specs):
        raise ValueError("the compressed model's inputs differ from the original's")
    constants = constant_inputs(specs[0], o.input_values)
    shapes = resolve_input_shapes(specs[0], o.input_shapes, o.default_dim, constants)
    dtypes = [{s.name: s.dtype for s in side} for side in specs]
    opened = [
        open_session(
            p,
            threads=o.threads,
            providers=providers,
            graph_optimization_level=o.graph_optimization_level,
        )
        for p in paths
    ]
    sessions = [s for s, _ in opened]
    outputs = [{out.name for out in s.get_outputs()} for s in sessions]
    if any(names != outputs[0] for names in outputs):
        raise ValueError(f"outputs differ: {sorted(outputs[0])} vs {sorted(outputs[-1])}")
    # A batch axis is a symbolic first dim on every input of every model; a constant input
    # keeps its one shape, so it leaves no batch axis to vary.
    dynamic = bool(shapes) and all(
        s.shape and isinstance(s.shape[0], str) for side in specs for s in side
    )
    batches = o.batch_sizes if dynamic and not constants else []
    warnings = []
    if o.batch_sizes and not batches:
        warnings.append(
            f"batch_sizes ignored: inputs {sorted(constants)} are given as constant values"
            if dynamic
            else "batch_sizes ignored: the model's first input dim is fixed, not a batch axis"
        )
    budget = o.time_budget_s / (1 + len(batches))  # the budget bounds all timed loops together

    base = synthetic_inputs(specs[0], shapes, samples=1, seed=o.seed + 1, constants=constants)[0]
    feeds = [fidelity.as_feed(base, d) for d in dtypes]
    times = timed_runs(sessions, feeds, o.runs, o.warmup, budget)
    batch = next(iter(shapes.values()))[0] if dynamic else 1
    blocks = []
    for path, (_, load_ms), ms in zip(paths, opened, times, strict=True):
        sizes, notes = _static(path, shapes, o.default_dim)
        stats = latency_stats(ms)
        blocks.append(
            ModelMetrics(
                **sizes,
                latency_ms=stats,
                runs=len(ms),
                load_ms=load_ms,
                throughput_per_s=throughput_per_s(batch, stats),
                batch_size=batch if dynamic else None,
            )
        )
        warnings += notes
    for size in batches:
        sized = synthetic_inputs(specs[0], _with_batch(shapes, size), samples=1, seed=o.seed + 2)[0]
        sized_times = timed_runs(
            sessions, [fidelity.as_feed(sized, d) for d in dtypes], o.runs, o.warmup, budget
        )
        for block, ms in zip(blocks, sized_times, strict=True):
            per_s = throughput_per_s(size, latency_stats(ms))
            if per_s is not None:
                block.throughput_by_batch = {**(block.throughput_by_batch or {}), str(size): per_s}
    if o.measure_memory:
        warnings += _memory(paths, feeds, blocks, providers, o)
    return _Run(blocks, sessions, dtypes, specs[0], shapes, warnings)


def _memory(
    paths: list[Path],
    feeds: list[dict[str, np.ndarray]],
    blocks: list[ModelMetrics],
    providers: list[str],
    o: MeasureOptions,
) -> list[str]:
    warnings = []
    for path, feed, block in zip(paths, feeds, blocks, strict=True):
        try:
            rss = measure_peak_rss(
                path,
                feed,
                threads=o.threads,
                providers=providers,
                graph_optimization_level=o.graph_optimization_level,
            )
        except MemoryMeasurementError as exc:
            warnings.append(f"{path.name}: peak memory not measured ({exc})")
            continue
        block.peak_rss_mb, block.rss_before_load_mb = rss.peak_rss_mb, rss.rss_before_load_mb
    return warnings


def benchmark_single(model_path: Path, options: MeasureOptions) -> ModelMetrics:
    """One model's block (latency, throughput, memory, size, flops), accuracy with labels, host."""
    run = _measure([Path(model_path)], options)
    result = run.blocks[0]
    samples, labels, _ = fidelity.evaluation_samples(
        run.specs, run.shapes, options.eval_dataset_path, synthetic=options.fidelity_samples,
        seed=options.seed, constants=constant_inputs(run.specs, options.input_values),
    )  # fmt: skip
    outputs = fidelity.run_outputs(run.sessions[0], samples, run.dtypes[0])
    if any(
        not np.isfinite(a).all()
        for arrays in outputs.values()
        for a in arrays
        if a.dtype.kind == "f"
    ):
        run.warnings.append("the model gives inf/nan outputs on the evaluation inputs")
    if labels is not None:
        metrics, notes = fidelity.task_metrics(outputs, labels)
        run.warnings += notes
        if metrics:
            result.accuracy = fidelity.single_accuracy(metrics, len(samples))
    result.host = host_info(run.sessions, options.threads)
    result.warnings = run.warnings or None
    return result


def benchmark_pair(
    original_path: Path, compressed_path: Path, options: MeasureOptions
) -> PairMeasurement:
    """Both models measured in one process, interleaved: the job's metrics and weight rows."""
    paths = [Path(original_path), Path(compressed_path)]
    run = _measure(paths, options)
    return compare_pair(
        paths, run.blocks, run.sessions, run.dtypes, run.specs, run.shapes,
        options=options, host=host_info(run.sessions, options.threads), warnings=run.warnings,
    )  # fmt: skip
