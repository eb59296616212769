"""The comparison half of the metrics block: ratios, fidelity, accuracy, pruning, weight error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from app.compression.graph.analysis import TensorSpec
from app.compression.graph.inputs import constant_inputs
from app.compression.measure import fidelity
from app.compression.measure.metrics import Host, Metrics, ModelMetrics, PairMeasurement
from app.compression.measure.metrics_math import pruning_from_models
from app.compression.measure.options import MeasureOptions
from app.compression.measure.quant_error import weight_report_from_models

_LOW_COSINE = 0.99  # below this the compressed outputs point visibly elsewhere
_ACCURACY_DROP = 0.01  # a top-1 loss above one point is worth a warning
_NOISY_CV = 0.25  # a spread of run times this large next to the mean makes the ratio shaky
# Repeated runs of one pair on a shared CPU spread by up to ~20% (README): a speedup between
# this and 1 is noise, not news.
_SLOWER_BELOW = 0.8


def compare_pair(
    paths: list[Path],
    blocks: list[ModelMetrics],
    sessions: list[Any],
    dtypes: list[dict[str, str]],
    specs: list[TensorSpec],
    shapes: dict[str, list[int]],
    *,
    options: MeasureOptions,
    host: Host,
    warnings: list[str],
    deadline: float,
) -> PairMeasurement:
    """The metrics that compare the two models, after `warnings` from timing them; the
    evaluation runs until `deadline` (time.monotonic), at least one sample."""
    original, compressed = blocks
    speedup = original.latency_ms.p50 / compressed.latency_ms.p50
    models = onnx.load(str(paths[0])), onnx.load(str(paths[1]))
    pruning = pruning_from_models(*models)
    weights = weight_report_from_models(*models)
    metrics = Metrics(
        original=original,
        compressed=compressed,
        compression_ratio=original.size_bytes / compressed.size_bytes,
        speedup_ratio=speedup,
        pruning_rate=pruning["pruning_rate"],
        sparsity=pruning["sparsity"],
        quantization_error=weights.summary(),
        host=host,
    )
    warnings = list(warnings)

    samples, labels, source = fidelity.evaluation_samples(
        specs, shapes, options.eval_dataset_path, synthetic=options.fidelity_samples,
        seed=options.seed, constants=constant_inputs(specs, options.input_values),
    )  # fmt: skip
    if samples:
        outputs, labels, notes = fidelity.run_outputs_within(
            sessions, samples, labels, dtypes, deadline
        )
        warnings += notes
        metrics.fidelity, notes = fidelity.compare_outputs(
            outputs[0], outputs[1], source, options.blank_index
        )
        warnings += notes
        if metrics.fidelity and metrics.fidelity.cosine_similarity < _LOW_COSINE:
            cosine = metrics.fidelity.cosine_similarity
            warnings.append(f"compressed outputs diverge: cosine similarity {cosine:.3f}")
        if labels is not None:
            scores = [fidelity.task_metrics(out, labels, options.blank_index) for out in outputs]
            warnings += list(dict.fromkeys(scores[0][1] + scores[1][1]))
            if scores[0][0] and scores[1][0]:
                accuracy = fidelity.accuracy_block(scores[0][0], scores[1][0], len(labels))
                metrics.accuracy = accuracy
                if accuracy.metric == "top1" and accuracy.delta < -_ACCURACY_DROP:
                    warnings.append(f"top-1 accuracy fell by {-100 * accuracy.delta:.1f} points")
    warnings += speed_warnings(original, compressed)
    metrics.warnings = warnings or None
    return PairMeasurement(metrics=metrics, weights=weights.tensors)


def speed_warnings(original: ModelMetrics, compressed: ModelMetrics) -> list[str]:
    """Noisy timings of either side, and a compressed model slower beyond the noise."""
    warnings = [
        f"{name} timings are noisy (cv {side.latency_ms.cv:.2f})"
        for name, side in (("original", original), ("compressed", compressed))
        if side.latency_ms.cv > _NOISY_CV
    ]
    speedup = original.latency_ms.p50 / compressed.latency_ms.p50
    if speedup < _SLOWER_BELOW:
        warnings.append(
            f"compressed model is slower than the original (p50 "
            f"{compressed.latency_ms.p50:.4f} ms vs {original.latency_ms.p50:.4f} ms, "
            f"speedup {speedup:.2f}x; differences under 20% are noise)"
        )
    return warnings
