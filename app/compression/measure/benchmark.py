"""Side-by-side benchmark of an original and a compressed model: the job's metrics block."""

from __future__ import annotations

import time
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
from app.compression.measure.budget import TimeBudget, seconds_until
from app.compression.measure.comparison import compare_pair
from app.compression.measure.flops import count_flops
from app.compression.measure.latency import (
    cpu_name,
    effective_threads,
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


# Shares of the time budget, each of what is left when the part starts: the timed loops (warm-up,
# runs, every batch size) take 60%, the memory probes half of the rest, the evaluation the rest.
_TIMING_SHARE = 0.6
_MEMORY_SHARE = 0.5


@dataclass
class _Run:
    """What timing the models produced, for the comparison and the per-model blocks."""

    blocks: list[ModelMetrics]
    sessions: list[Any]
    dtypes: list[dict[str, str]]
    specs: list[TensorSpec]
    shapes: dict[str, list[int]]
    budget: TimeBudget
    threads: int
    warnings: list[str] = field(default_factory=list)


def _static(
    path: Path, side: str, shapes: dict[str, list[int]], default_dim: int
) -> tuple[dict[str, int], list[str]]:
    """size_bytes, param_count and flops (MACs, as the contract's "flops" means) of one file."""
    model = load_proto(path)
    sizes = {"size_bytes": model_size_bytes(path, model), "param_count": param_count(model)}
    flops = count_flops(model, shapes, default_dim)
    if "total_macs" in flops:
        return {**sizes, "flops": flops["total_macs"]}, []
    return sizes, [f"{side}: flops left out, shapes unknown at {flops['unresolved'][:5]}"]


def _with_batch(shapes: dict[str, list[int]], batch: int) -> dict[str, list[int]]:
    return {name: [batch, *shape[1:]] for name, shape in shapes.items()}


def _slot(end: float, parts: int) -> float:
    """The deadline of the next of `parts` equal parts of the time until `end`."""
    return time.monotonic() + seconds_until(end) / parts


def _measure(paths: list[Path], sides: list[str], o: MeasureOptions) -> _Run:
    """Load, time interleaved, throughput per batch size and peak memory of each model."""
    providers = resolve_providers(o.provider)
    threads = effective_threads(o.threads)
    warnings = []
    if threads < o.threads:
        warnings.append(f"threads capped at {threads}: the worker has {threads} CPUs to run them")
    specs = [graph_inputs(load_proto(p)) for p in paths]
    if any({s.name for s in side} != {s.name for s in specs[0]} for side in specs):
        raise ValueError("the compressed model's inputs differ from the original's")
    constants = constant_inputs(specs[0], o.input_values)
    shapes = resolve_input_shapes(specs[0], o.input_shapes, o.default_dim, constants)
    dtypes = [{s.name: s.dtype for s in side} for side in specs]
    opened = [
        open_session(
            p,
            threads=threads,
            providers=providers,
            graph_optimization_level=o.graph_optimization_level,
        )
        for p in paths
    ]
    sessions = [s for s, _ in opened]
    outputs = [{out.name for out in s.get_outputs()} for s in sessions]
    if any(names != outputs[0] for names in outputs):
        raise ValueError(f"outputs differ: {sorted(outputs[0])} vs {sorted(outputs[-1])}")
    budget = TimeBudget(o.time_budget_s)  # loading is done: from here on the budget counts
    # A batch axis is a symbolic first dim on every input of every model; a constant input
    # keeps its one shape, so it leaves no batch axis to vary.
    dynamic = bool(shapes) and all(
        s.shape and isinstance(s.shape[0], str) for side in specs for s in side
    )
    sizes = o.batch_sizes if dynamic and not constants else []
    if o.batch_sizes and not sizes:
        warnings.append(
            f"batch_sizes ignored: inputs {sorted(constants)} are given as constant values"
            if dynamic
            else "batch_sizes ignored: the model's first input dim is fixed, not a batch axis"
        )

    timing_end = budget.share(_TIMING_SHARE)
    base = synthetic_inputs(specs[0], shapes, samples=1, seed=o.seed + 1, constants=constants)[0]
    feeds = [fidelity.as_feed(base, d) for d in dtypes]
    times = timed_runs(sessions, feeds, o.runs, o.warmup, _slot(timing_end, 1 + len(sizes)))
    batch = next(iter(shapes.values()))[0] if dynamic else 1
    blocks = []
    for path, side, (_, load_ms), ms in zip(paths, sides, opened, times, strict=True):
        sizes_of, notes = _static(path, side, shapes, o.default_dim)
        stats = latency_stats(ms)
        blocks.append(
            ModelMetrics(
                **sizes_of,
                input_shapes=shapes or None,
                latency_ms=stats,
                runs=len(ms),
                load_ms=load_ms,
                throughput_per_s=throughput_per_s(batch, stats),
                batch_size=batch if dynamic else None,
            )
        )
        warnings += notes
    run = _Run(blocks, sessions, dtypes, specs[0], shapes, budget, threads, warnings)
    _throughput_by_batch(run, sizes, batch, o, timing_end)
    if o.measure_memory:
        _memory(run, paths, sides, feeds, providers, o, budget.share(_MEMORY_SHARE))
    return run


def _throughput_by_batch(
    run: _Run, sizes: list[int], batch: int, o: MeasureOptions, end: float
) -> None:
    """Throughput at each extra batch size, each in an equal part of the time until `end`."""
    # Time for one sample through every model, from the runs at the base batch.
    per_sample_s = sum(block.latency_ms.p50 for block in run.blocks) / 1000.0 / batch
    for index, size in enumerate(sizes):
        deadline = _slot(end, len(sizes) - index)
        if per_sample_s * size > seconds_until(deadline):
            run.warnings.append(
                f"throughput at batch {size} left out: one run would take about "
                f"{per_sample_s * size:.2f} s, more than the time budget leaves"
            )
            continue
        sized = synthetic_inputs(
            run.specs, _with_batch(run.shapes, size), samples=1, seed=o.seed + 2
        )[0]
        feeds = [fidelity.as_feed(sized, d) for d in run.dtypes]
        sized_times = timed_runs(run.sessions, feeds, o.runs, o.warmup, deadline)
        for block, ms in zip(run.blocks, sized_times, strict=True):
            per_s = throughput_per_s(size, latency_stats(ms))
            if per_s is not None:
                block.throughput_by_batch = {**(block.throughput_by_batch or {}), str(size): per_s}


def _memory(
    run: _Run,
    paths: list[Path],
    sides: list[str],
    feeds: list[dict[str, np.ndarray]],
    providers: list[str],
    o: MeasureOptions,
    end: float,
) -> None:
    """Each model's peak memory in a probe process, in an equal part of the time until `end`."""
    for index, (path, side, feed, block) in enumerate(
        zip(paths, sides, feeds, run.blocks, strict=True)
    ):
        share = seconds_until(end) / (len(paths) - index)
        if share <= 0:
            run.warnings.append(f"{side}: peak memory not measured, the time budget ran out")
            continue
        try:
            rss = measure_peak_rss(
                path, feed, threads=run.threads, providers=providers,
                graph_optimization_level=o.graph_optimization_level,
                timeout_s=share + block.load_ms / 1000.0,  # the probe loads the model too
            )  # fmt: skip
        except MemoryMeasurementError as exc:
            run.warnings.append(f"{side}: peak memory not measured ({exc})")
            continue
        block.peak_rss_mb, block.rss_before_load_mb = rss.peak_rss_mb, rss.rss_before_load_mb


def benchmark_single(model_path: Path, options: MeasureOptions) -> ModelMetrics:
    """One model's block (latency, throughput, memory, size, flops), accuracy with labels, host."""
    run = _measure([Path(model_path)], ["model"], options)
    result = run.blocks[0]
    samples, labels, _ = fidelity.evaluation_samples(
        run.specs, run.shapes, options.eval_dataset_path, synthetic=options.fidelity_samples,
        seed=options.seed, constants=constant_inputs(run.specs, options.input_values),
    )  # fmt: skip
    [outputs], labels, notes = fidelity.run_outputs_within(
        run.sessions, samples, labels, run.dtypes, run.budget.end
    )
    run.warnings += notes
    if any(
        not np.isfinite(a).all()
        for arrays in outputs.values()
        for a in arrays
        if a.dtype.kind == "f"
    ):
        run.warnings.append("the model gives inf/nan outputs on the evaluation inputs")
    if labels is not None:
        metrics, notes = fidelity.task_metrics(outputs, labels, options.blank_index)
        run.warnings += notes
        if metrics:
            result.accuracy = fidelity.single_accuracy(metrics, len(labels))
    result.host = host_info(run.sessions, run.threads)
    result.warnings = run.warnings or None
    return result


def benchmark_pair(
    original_path: Path, compressed_path: Path, options: MeasureOptions
) -> PairMeasurement:
    """Both models measured in one process, interleaved: the job's metrics and weight rows."""
    paths = [Path(original_path), Path(compressed_path)]
    run = _measure(paths, ["original", "compressed"], options)
    return compare_pair(
        paths, run.blocks, run.sessions, run.dtypes, run.specs, run.shapes,
        options=options, host=host_info(run.sessions, run.threads), warnings=run.warnings,
        deadline=run.budget.end,
    )  # fmt: skip
