"""ONNX Runtime sessions from benchmark options, interleaved timing, latency stats, host info."""

from __future__ import annotations

import functools
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from app.compression.measure.budget import seconds_until
from app.compression.measure.metrics import Host, LatencyStats

try:
    import cpuinfo  # optional: a nicer CPU name than /proc/cpuinfo gives
except ImportError:
    cpuinfo = None

OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "layout": "ORT_ENABLE_LAYOUT",
    "all": "ORT_ENABLE_ALL",
}
_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}
# Accelerated providers get the CPU (and for TensorRT, CUDA) provider behind them for the
# nodes they do not implement, as ONNX Runtime's own examples do.
_FALLBACKS = {
    "CUDAExecutionProvider": ["CPUExecutionProvider"],
    "TensorrtExecutionProvider": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


def latency_stats(samples_ms: list[float]) -> LatencyStats:
    """p50/p90/p99 (linear interpolation), mean, sample std (n-1) and cv = std / mean."""
    if not samples_ms:
        raise ValueError("latency_stats needs at least one sample")
    data = np.asarray(samples_ms, dtype=np.float64)
    mean = float(data.mean())
    std = float(data.std(ddof=1)) if data.size > 1 else 0.0
    p50, p90, p99 = (float(v) for v in np.percentile(data, [50, 90, 99]))
    cv = std / mean if mean > 0 else 0.0
    return LatencyStats(p50=p50, p90=p90, p99=p99, mean=mean, std=std, cv=cv)


def resolve_providers(provider: str) -> list[str]:
    """The provider list for a session; ValueError unless the provider is present here."""
    name = _ALIASES.get(provider.lower(), provider)
    available = ort.get_available_providers()
    if name not in available:
        raise ValueError(
            f"execution provider {provider!r} is not available on this host "
            f"(onnxruntime {ort.__version__} offers {', '.join(available)})"
        )
    return [name, *(p for p in _FALLBACKS.get(name, []) if p in available)]


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, narrowed by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS)
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 limit to read: the affinity mask is the answer
    return max(1, cpus)


def effective_threads(requested: int) -> int:
    """The intra-op threads a session gets: never more than the CPUs there are to run them.

    More threads than CPUs make ONNX Runtime's spinning workers fight over the cores, and one
    run can then take orders of magnitude longer than with the threads it can use.
    """
    return max(1, min(requested, available_cpus()))


def session_options(threads: int, graph_optimization_level: str) -> Any:
    """SessionOptions: `threads` intra-op threads (capped at the CPUs), sequential execution,
    the given opt level."""
    if graph_optimization_level not in OPT_LEVELS:
        raise ValueError(
            f"graph_optimization_level must be one of {sorted(OPT_LEVELS)}, "
            f"got {graph_optimization_level!r}"
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = effective_threads(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel, OPT_LEVELS[graph_optimization_level]
    )
    return options


def open_session(
    path: Path, *, threads: int, providers: list[str], graph_optimization_level: str
) -> tuple[Any, float]:
    """(session, load time in ms): the time to parse, optimize and initialize the model."""
    options = session_options(threads, graph_optimization_level)
    start = time.perf_counter()
    session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    return session, (time.perf_counter() - start) * 1000.0


def timed_runs(
    sessions: list[Any], feeds: list[dict[str, np.ndarray]], runs: int, warmup: int, deadline: float
) -> list[list[float]]:
    """Per-session run times in ms: up to `warmup` untimed rounds in the first half of the time
    to `deadline` (time.monotonic), then up to `runs` timed rounds until it (at least one)."""
    warmup_end = time.monotonic() + seconds_until(deadline) / 2
    for _ in range(warmup):
        if time.monotonic() >= warmup_end:
            break
        for session, feed in zip(sessions, feeds, strict=True):
            session.run(None, feed)
    timings: list[list[float]] = [[] for _ in sessions]
    # Interleaved (A B A B ...) so that clock drift, thermal state and noisy neighbours hit
    # every model alike; at least one round even when the budget is already spent.
    for i in range(runs):
        if i > 0 and time.monotonic() >= deadline:
            break
        for session, feed, times in zip(sessions, feeds, timings, strict=True):
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1000.0)
    return timings


def throughput_per_s(batch: int, stats: LatencyStats) -> float | None:
    """Samples per second: batch x runs per second, from the mean (total work / total time)."""
    return batch * 1000.0 / stats.mean if stats.mean > 0 else None


@functools.lru_cache(maxsize=1)
def _py_cpuinfo() -> dict[str, Any]:
    """py-cpuinfo's answer, asked once per process (it takes about a second)."""
    try:
        return dict(cpuinfo.get_cpu_info()) if cpuinfo is not None else {}
    except Exception:  # an optional nicety (and slow): any failure falls back
        return {}


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """CPU model string: py-cpuinfo if installed, else /proc/cpuinfo, else the stdlib."""
    brand = _py_cpuinfo().get("brand_raw")
    if brand:
        return str(brand)
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


# CPU flags that decide how fast int8 and fp16 kernels run, under one spelling each.
_SPEED_FEATURES = {
    "avx2": "avx2",
    "avx512f": "avx512f",
    "avx512_vnni": "avx512_vnni",
    "avx512vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "avxvnni": "avx_vnni",
    "amx_tile": "amx_tile",
    "amx_int8": "amx_int8",
    "amx_bf16": "amx_bf16",
    "amx_fp16": "amx_fp16",
    "f16c": "f16c",
    "avx512_fp16": "avx512_fp16",
    "avx512fp16": "avx512_fp16",
    "avx512_bf16": "avx512_bf16",
    "asimddp": "asimddp",  # ARM int8 dot product
    "asimdhp": "asimdhp",  # ARM float16 arithmetic
}


@functools.lru_cache(maxsize=1)
def cpu_features() -> tuple[str, ...]:
    """The host's CPU flags that matter for int8/fp16 speed, sorted (empty when unknown)."""
    flags = set(_py_cpuinfo().get("flags") or [])
    if not flags:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as info:
                for line in info:
                    if line.startswith(("flags", "Features")):
                        flags.update(line.split(":", 1)[1].split())
        except OSError:
            pass
    return tuple(sorted({_SPEED_FEATURES[f] for f in flags if f in _SPEED_FEATURES}))


def host_info(sessions: list[Any], threads: int) -> Host:
    """The fingerprint stored with every result: CPU, threads used, ORT version, provider."""
    return Host(
        cpu=cpu_name(),
        cores=effective_threads(threads),
        cpu_count=os.cpu_count(),
        onnxruntime=ort.__version__,
        provider=sessions[0].get_providers()[0],
        features=list(cpu_features()),
    )
