"""Side-by-side latency, size and output fidelity of an original and a compressed model."""

from __future__ import annotations

import functools
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from app.compression.analysis import graph_inputs, load_proto, model_size_bytes, param_count
from app.compression.inputs import resolve_input_shapes, synthetic_inputs

PROVIDER = "CPUExecutionProvider"


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    """p50/p90/p99 (linear interpolation), mean, sample std (n-1) and cv = std / mean."""
    if not samples_ms:
        raise ValueError("latency_stats needs at least one sample")
    data = np.asarray(samples_ms, dtype=np.float64)
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if data.size > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(data, [50, 90, 99]))
    return {
        "p50": p50,
        "p90": p90,
        "p99": p99,
        "mean": mean,
        "std": std,
        "cv": std / mean if mean > 0 else 0.0,
    }


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """CPU model string; py-cpuinfo takes about a second, hence the cache."""
    try:
        import cpuinfo

        brand = cpuinfo.get_cpu_info().get("brand_raw")
        if brand:
            return str(brand)
    except Exception:  # an optional nicety: any failure falls back to the stdlib
        pass
    return platform.processor() or platform.machine() or "unknown"


def _session(path: Path, threads: int) -> tuple[Any, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    start = time.perf_counter()
    session = ort.InferenceSession(str(path), sess_options=options, providers=[PROVIDER])
    return session, (time.perf_counter() - start) * 1000.0


def _as_feed(sample: dict[str, np.ndarray], dtypes: dict[str, str]) -> dict[str, np.ndarray]:
    # A compressed model may declare other input dtypes (fp16 without keep_io_types).
    return {name: arr.astype(dtypes[name], copy=False) for name, arr in sample.items()}


def _timed_runs(sessions: list[Any], feeds: list[dict], runs: int, warmup: int, budget_s: float):
    for _ in range(warmup):
        for session, feed in zip(sessions, feeds, strict=True):
            session.run(None, feed)
    timings: list[list[float]] = [[] for _ in sessions]
    deadline = time.perf_counter() + budget_s
    # Interleaved so that clock drift, thermal state and noisy neighbours hit both alike.
    for i in range(runs):
        if i > 0 and time.perf_counter() > deadline:
            break
        for session, feed, times in zip(sessions, feeds, timings, strict=True):
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1000.0)
    return timings


def _flat_outputs(outputs: list[Any]) -> np.ndarray:
    parts = [np.asarray(o, dtype=np.float64).ravel() for o in outputs]
    return np.concatenate(parts) if parts else np.zeros(0)


def _fidelity(sessions: list[Any], feeds: list[list[dict]]) -> tuple[dict[str, Any], list[str]]:
    warnings: list[str] = []
    names = [o.name for o in sessions[0].get_outputs()]
    ref_chunks, new_chunks = [], []
    for feed_a, feed_b in zip(*feeds, strict=True):
        out_a = sessions[0].run(names, feed_a)
        out_b = sessions[1].run(names, feed_b)
        for name, a, b in zip(names, out_a, out_b, strict=True):
            if np.shape(a) != np.shape(b):
                return {}, [f"output {name!r} changed shape: {np.shape(a)} -> {np.shape(b)}"]
        ref_chunks.append(_flat_outputs(out_a))
        new_chunks.append(_flat_outputs(out_b))
    ref, new = np.concatenate(ref_chunks), np.concatenate(new_chunks)
    finite = np.isfinite(ref) & np.isfinite(new)
    # inf/nan (e.g. float16 overflow) would make every statistic meaningless and break JSON.
    mismatched = int(np.count_nonzero(~finite & (np.isfinite(ref) | np.isfinite(new))))
    ref, new = ref[finite], new[finite]
    diff = np.abs(ref - new)
    norm = float(np.linalg.norm(ref) * np.linalg.norm(new))
    if norm > 0:
        cosine = float(np.clip(np.dot(ref, new) / norm, -1.0, 1.0))
    else:  # two zero vectors are identical; one zero vector shares no direction
        cosine = 1.0 if not ref.any() and not new.any() else 0.0
    result: dict[str, Any] = {
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "mean_abs_error": float(diff.mean()) if diff.size else 0.0,
        "cosine_similarity": cosine,
        "samples": len(feeds[0]),
    }
    if mismatched:
        result["nonfinite_mismatches"] = mismatched
        warnings.append(f"compressed model gives {mismatched} inf/nan values the original does not")
    return result, warnings


def _side(path: Path, load_ms: float, stats: dict[str, float], runs: int) -> dict[str, Any]:
    model = load_proto(path)
    return {
        "size_bytes": model_size_bytes(path, model),
        "param_count": param_count(model),
        "latency_ms": {k: round(v, 4) for k, v in stats.items()},
        "load_ms": round(load_ms, 3),
        "runs": runs,
    }


def benchmark_pair(
    original_path: Path,
    compressed_path: Path,
    *,
    input_shapes: dict[str, list[int]] | None,
    runs: int,
    warmup: int,
    threads: int,
    time_budget_s: float,
    default_dim: int = 1,
    seed: int = 0,
    fidelity_samples: int = 8,
) -> dict[str, Any]:
    """Measure both models in one process, interleaved; returns the job's metrics block."""
    import onnxruntime as ort

    if runs < 1 or threads < 1:
        raise ValueError("runs and threads must be >= 1")
    specs = [graph_inputs(load_proto(p)) for p in (original_path, compressed_path)]
    if {s.name for s in specs[0]} != {s.name for s in specs[1]}:
        raise ValueError("the compressed model's inputs differ from the original's")
    shapes = resolve_input_shapes(specs[0], input_shapes, default_dim)
    dtypes = [{s.name: s.dtype for s in side} for side in specs]

    session_a, load_a = _session(original_path, threads)
    session_b, load_b = _session(compressed_path, threads)
    sessions = [session_a, session_b]
    outputs = [{o.name for o in s.get_outputs()} for s in sessions]
    if outputs[0] != outputs[1]:
        raise ValueError(f"outputs differ: {sorted(outputs[0])} vs {sorted(outputs[1])}")

    # Latency feed is drawn apart from the fidelity samples so neither depends on the other.
    base = synthetic_inputs(specs[0], shapes, samples=1, seed=seed + 1)[0]
    time_a, time_b = _timed_runs(
        sessions, [_as_feed(base, d) for d in dtypes], runs, warmup, time_budget_s
    )
    samples = synthetic_inputs(specs[0], shapes, samples=fidelity_samples, seed=seed)
    feeds = [[_as_feed(s, d) for s in samples] for d in dtypes]
    fidelity, warnings = _fidelity(sessions, feeds) if samples else ({}, [])

    stats_a, stats_b = latency_stats(time_a), latency_stats(time_b)
    original = _side(original_path, load_a, stats_a, len(time_a))
    compressed = _side(compressed_path, load_b, stats_b, len(time_b))
    speedup = stats_a["p50"] / stats_b["p50"]
    metrics: dict[str, Any] = {
        "original": original,
        "compressed": compressed,
        "compression_ratio": original["size_bytes"] / compressed["size_bytes"],
        "speedup_ratio": speedup,
    }
    if fidelity:
        metrics["fidelity"] = fidelity
    metrics["host"] = {
        "cpu": cpu_name(),
        "cores": threads,
        "onnxruntime": ort.__version__,
        "provider": PROVIDER,
    }
    if speedup < 1:
        warnings.append(
            f"compressed model is slower than the original (p50 {compressed['latency_ms']['p50']}"
            f" ms vs {original['latency_ms']['p50']} ms, speedup {speedup:.2f}x)"
        )
    if warnings:
        metrics["warnings"] = warnings
    return metrics
