"""The comparison half of the metrics block: ratios, fidelity, accuracy, pruning, weight error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from app.compression.graph.analysis import TensorSpec
from app.compression.measure import fidelity

_LOW_COSINE = 0.99  # below this the compressed outputs point visibly elsewhere
_ACCURACY_DROP = 0.01  # a top-1 loss above one point is worth a warning
_NOISY_CV = 0.25  # a spread of run times this large next to the mean makes the ratio shaky


def _static_comparison(original: Path, compressed: Path) -> dict[str, Any]:
    """pruning_rate, sparsity and quantization_error from the weights of both files."""
    import onnx

    from app.compression.measure.metrics_math import pruning_from_models
    from app.compression.measure.quant_error import weight_report_from_models

    models = onnx.load(str(original)), onnx.load(str(compressed))
    result: dict[str, Any] = dict(pruning_from_models(*models))
    report = weight_report_from_models(*models)
    if "mean_abs" in report:
        result["quantization_error"] = {
            "mean_abs": report["mean_abs"],
            "max_abs": report["max_abs"],
            "tensors": len(report["tensors"]),
            # The rows themselves: a job moves them to its report, the metrics keep the summary.
            "per_tensor": report["tensors"],
        }
    return result


def compare_pair(
    paths: list[Path],
    blocks: list[dict[str, Any]],
    sessions: list[Any],
    dtypes: list[dict[str, str]],
    specs: list[TensorSpec],
    shapes: dict[str, list[int]],
    *,
    eval_dataset_path: Path | None,
    fidelity_samples: int,
    seed: int,
) -> dict[str, Any]:
    """Everything in the metrics block that compares the two models (host aside)."""
    original, compressed = blocks
    speedup = original["latency_ms"]["p50"] / compressed["latency_ms"]["p50"]
    metrics: dict[str, Any] = {
        "original": original,
        "compressed": compressed,
        "compression_ratio": original["size_bytes"] / compressed["size_bytes"],
        "speedup_ratio": speedup,
    }
    metrics.update(_static_comparison(*paths))
    warnings: list[str] = []

    samples, labels, source = fidelity.evaluation_samples(
        specs, shapes, eval_dataset_path, synthetic=fidelity_samples, seed=seed
    )
    if samples:
        outputs = [
            fidelity.run_outputs(s, samples, d) for s, d in zip(sessions, dtypes, strict=True)
        ]
        block, notes = fidelity.compare_outputs(*outputs)
        warnings += notes
        if block:
            metrics["fidelity"] = {**block, "inputs": source}
            if block["cosine_similarity"] < _LOW_COSINE:
                cosine = block["cosine_similarity"]
                warnings.append(f"compressed outputs diverge: cosine similarity {cosine:.3f}")
        if labels is not None:
            scores = [fidelity.task_metrics(out, labels) for out in outputs]
            warnings += list(dict.fromkeys(scores[0][1] + scores[1][1]))
            if scores[0][0] and scores[1][0]:
                accuracy = fidelity.accuracy_block(scores[0][0], scores[1][0], len(samples))
                metrics["accuracy"] = accuracy
                if accuracy["metric"] == "top1" and accuracy["delta"] < -_ACCURACY_DROP:
                    warnings.append(f"top-1 accuracy fell by {-100 * accuracy['delta']:.1f} points")
    for name, side in (("original", original), ("compressed", compressed)):
        if side["latency_ms"]["cv"] > _NOISY_CV:
            warnings.append(f"{name} timings are noisy (cv {side['latency_ms']['cv']:.2f})")
    if speedup < 1:
        warnings.append(
            f"compressed model is slower than the original (p50 "
            f"{compressed['latency_ms']['p50']:.4f} ms vs {original['latency_ms']['p50']:.4f} ms, "
            f"speedup {speedup:.2f}x)"
        )
    metrics["warnings"] = warnings
    return metrics
