"""Pure statistics behind the metrics block: output fidelity, task accuracy, pruning."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from app.compression.measure.metrics import ErrorStats
from app.compression.measure.weights import effective_weights, match_original

ArrayLike = Any  # anything np.asarray accepts


def _pair(reference: ArrayLike, test: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64).ravel()
    new = np.asarray(test, dtype=np.float64).ravel()
    if ref.shape != new.shape:
        raise ValueError(f"cannot compare {ref.size} values with {new.size}")
    return ref, new


def sqnr_db(reference: ArrayLike, test: ArrayLike) -> float:
    """10 log10(sum(ref^2) / sum((ref - test)^2)); inf when identical, -inf for a zero signal."""
    ref, new = _pair(reference, test)
    signal = float(np.sum(ref * ref))
    noise = float(np.sum((ref - new) ** 2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine_similarity(reference: ArrayLike, test: ArrayLike) -> float:
    """Cosine of the angle between the flattened arrays, clipped to [-1, 1]."""
    ref, new = _pair(reference, test)
    norm = float(np.linalg.norm(ref) * np.linalg.norm(new))
    if norm == 0.0:
        # Two zero vectors are identical; a zero vector shares no direction with anything else.
        return 1.0 if not ref.any() and not new.any() else 0.0
    return float(np.clip(np.dot(ref, new) / norm, -1.0, 1.0))


def relative_error(reference: ArrayLike, test: ArrayLike) -> float:
    """||ref - test|| / ||ref|| (L2); inf when the reference is zero and the test is not."""
    ref, new = _pair(reference, test)
    noise = float(np.linalg.norm(ref - new))
    signal = float(np.linalg.norm(ref))
    if noise == 0.0:
        return 0.0
    return noise / signal if signal > 0 else math.inf


class ErrorAccumulator:
    """Streaming error statistics of test against reference arrays, fed one batch at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.nonfinite_mismatches = 0
        self.abs_sum = self.abs_max = 0.0
        self.dot = self.ref_sq = self.new_sq = self.noise_sq = 0.0

    def add(self, reference: ArrayLike, test: ArrayLike) -> None:
        """Fold in one pair; positions where either side is inf/nan are left out and counted."""
        ref, new = _pair(reference, test)
        finite = np.isfinite(ref) & np.isfinite(new)
        # Only count a mismatch where one side is finite: inf vs inf is agreement, not an error.
        self.nonfinite_mismatches += int(
            np.count_nonzero(~finite & (np.isfinite(ref) | np.isfinite(new)))
        )
        ref, new = ref[finite], new[finite]
        diff = ref - new
        self.count += ref.size
        if ref.size:
            self.abs_sum += float(np.abs(diff).sum())
            self.abs_max = max(self.abs_max, float(np.abs(diff).max()))
        self.dot += float(np.dot(ref, new))
        self.ref_sq += float(np.dot(ref, ref))
        self.new_sq += float(np.dot(new, new))
        self.noise_sq += float(np.dot(diff, diff))

    def result(self) -> ErrorStats:
        """max/mean abs error, cosine, relative error and SQNR (left out when infinite)."""
        norm = math.sqrt(self.ref_sq * self.new_sq)
        if norm > 0:
            cosine = float(np.clip(self.dot / norm, -1.0, 1.0))
        else:
            cosine = 1.0 if self.ref_sq == self.new_sq == 0 else 0.0
        stats = ErrorStats(
            max_abs_error=self.abs_max,
            mean_abs_error=self.abs_sum / self.count if self.count else 0.0,
            cosine_similarity=cosine,
        )
        if self.noise_sq == 0:
            stats.relative_error = 0.0
        elif self.ref_sq > 0:
            stats.relative_error = math.sqrt(self.noise_sq / self.ref_sq)
            stats.sqnr_db = 10.0 * math.log10(self.ref_sq / self.noise_sq)
        return stats


def _scores(scores: ArrayLike) -> np.ndarray:
    array = np.asarray(scores)
    if array.ndim != 2 or array.shape[1] < 2:
        raise ValueError(f"class scores must be 2-D [samples, classes>=2], got {array.shape}")
    return array


def top1_agreement(reference: ArrayLike, test: ArrayLike) -> float:
    """Share of rows whose argmax class is the same in both [samples, classes] arrays."""
    ref, new = _scores(reference), _scores(test)
    if ref.shape != new.shape:
        raise ValueError(f"score shapes differ: {ref.shape} vs {new.shape}")
    return float(np.mean(np.argmax(ref, axis=1) == np.argmax(new, axis=1)))


def topk_accuracy(scores: ArrayLike, labels: ArrayLike, k: int = 1) -> float:
    """Share of rows whose label is among the k highest scores (ties: lower class id first)."""
    array = _scores(scores)
    truth = np.asarray(labels).ravel()
    if truth.size != array.shape[0]:
        raise ValueError(f"{truth.size} labels for {array.shape[0]} rows of scores")
    if not 1 <= k <= array.shape[1]:
        raise ValueError(f"k must be in [1, {array.shape[1]}], got {k}")
    # A stable sort of the negated scores keeps equal scores in class order: deterministic.
    top = np.argsort(-array, axis=1, kind="stable")[:, :k]
    return float(np.mean(np.any(top == truth[:, None], axis=1)))


def mse(prediction: ArrayLike, target: ArrayLike) -> float:
    """Mean squared error over all elements."""
    pred, true = _pair(prediction, target)
    return float(np.mean((pred - true) ** 2))


def mae(prediction: ArrayLike, target: ArrayLike) -> float:
    """Mean absolute error over all elements."""
    pred, true = _pair(prediction, target)
    return float(np.mean(np.abs(pred - true)))


def pruning_stats(original_path: Path, compressed_path: Path) -> dict[str, float]:
    """pruning_rate = weights zeroed or removed / original weights; sparsity = zeros / weights.

    Weights are the float values a model computes with: float initializers, and quantized
    ones dequantized. A weight that quantization merely rounded to zero (|w| < step / 2) is
    not counted as pruned, so a plain int8 model reports a pruning rate of about 0.
    """
    return pruning_from_models(onnx.load(str(original_path)), onnx.load(str(compressed_path)))


def pruning_from_models(
    original_model: onnx.ModelProto, compressed_model: onnx.ModelProto
) -> dict[str, float]:
    """pruning_stats on loaded ModelProtos (weights included)."""
    original = effective_weights(original_model)
    compressed = effective_weights(compressed_model)
    total_before = sum(w.values.size for w in original.values())
    total_after = sum(w.values.size for w in compressed.values())
    zeros_after = sum(int(np.count_nonzero(w.values == 0)) for w in compressed.values())
    zeroed = 0
    by_name = {name: w.values for name, w in original.items()}
    for weight in compressed.values():
        match = match_original(weight, by_name)
        if match is None:
            continue
        newly_zero = (match.values == 0) & (match.original != 0)
        if match.step is not None:
            # Rounding to the nearest level, not pruning, sent these to zero.
            newly_zero &= np.abs(match.original) > match.step / 2
        zeroed += int(np.count_nonzero(newly_zero))
    # Counts rather than names for removals: a renamed tensor is not a removed one.
    removed = max(0, total_before - total_after)
    return {
        "pruning_rate": (zeroed + removed) / total_before if total_before else 0.0,
        "sparsity": zeros_after / total_after if total_after else 0.0,
    }
