"""What the analysis endpoint adds to a model's analysis: the workers' hosts and plain notes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from app.compression.graph.analysis_report import ModelAnalysis
from app.compression.measure.metrics import Host
from app.compression.search.planner import FAST_FP16_FEATURES
from app.onnx_models.schemas import WorkerHostOut

# Instructions that make int8 matrix products fast (x86 VNNI/AMX, ARM dot product).
INT8_DOT_FEATURES = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})


def _host_of(metrics: dict[str, Any]) -> Host | None:
    """The fingerprint in a job's metrics: top level for pairs and single models alike."""
    raw = metrics.get("host")
    if not isinstance(raw, dict):
        return None
    try:
        return Host.model_validate(raw)
    except ValidationError:
        return None


def worker_hosts(recent: list[tuple[dict[str, Any], datetime]]) -> list[WorkerHostOut]:
    """Distinct hosts of (metrics, finished_at) rows given newest first, each at its latest."""
    hosts: dict[tuple[str, int, tuple[str, ...]], WorkerHostOut] = {}
    for metrics, finished_at in recent:
        host = _host_of(metrics)
        if host is None:
            continue
        features = host.features or []
        key = (host.cpu, host.cores, tuple(features))
        if key not in hosts:
            hosts[key] = WorkerHostOut(
                cpu=host.cpu, cores=host.cores, features=features, seen_at=finished_at
            )
    return list(hosts.values())


def _cpu_notes(workers: list[WorkerHostOut]) -> list[str]:
    if not workers:
        return [
            "no job has been measured yet, so the workers' CPU features are unknown: int8 and "
            "fp16 speedups depend on them"
        ]
    known = [w for w in workers if w.features]
    if not known:
        return ["the workers' fingerprints predate CPU features: run a job to record them"]
    notes = []
    if not any(INT8_DOT_FEATURES & set(w.features) for w in known):
        notes.append(
            "no worker CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI, AMX): "
            "int8 models will be smaller but may not be much faster"
        )
    if not any(FAST_FP16_FEATURES & set(w.features) for w in known):
        notes.append(
            "no worker CPU computes float16 natively (AVX-512 FP16, AMX-FP16): fp16 halves the "
            "size but will not be faster"
        )
    return notes


def _model_notes(analysis: ModelAnalysis) -> list[str]:
    flags, notes = analysis.flags, []
    if flags.conv_heavy and not flags.has_recurrent:
        notes.append(
            "Conv layers hold most weights: static QDQ per-channel (int8-static) with real "
            "calibration data fits best"
        )
    if flags.has_recurrent:
        notes.append(
            "recurrent layers: dynamic int8 (int8-dynamic) runs LSTM in int8; static "
            "quantization gives LSTM/GRU 8-bit weights only, and GRU has no dynamic int8 kernel"
        )
    if flags.matmul_heavy:
        notes.append("MatMul/Gemm layers hold most weights: dynamic int8 fits them")
    if flags.has_embeddings:
        notes.append("embedding tables: quantize_embeddings stores them in 8 bits too")
    if flags.large_matmul_params:
        notes.append("large MatMul weights: int4 weight-only can shrink them about 7x")
    if analysis.symbolic_dims:
        dims = ", ".join(sorted({f"{d.input}[{d.axis}]" for d in analysis.symbolic_dims}))
        notes.append(
            f"open input dims ({dims}): give input_shapes to benchmark at the sizes you serve"
        )
    if analysis.subgraphs:
        notes.append(
            f"{len(analysis.subgraphs)} If/Loop/Scan bodies: static calibration cannot see "
            "inside them, so their weights get 8-bit storage only"
        )
    memory = analysis.calibration_memory
    if memory is not None:
        bound = "" if memory.complete else " at least"
        notes.append(
            f"static calibration on {memory.samples} samples needs{bound} about "
            f"{memory.estimate_bytes / 2**20:.0f} MiB (an estimate, with open dims at 1)"
        )
    return notes


def notes_for(analysis: ModelAnalysis, workers: list[WorkerHostOut]) -> list[str]:
    """Plain sentences on what the analysis and the workers' CPUs mean for compression."""
    return _model_notes(analysis) + _cpu_notes(workers)
