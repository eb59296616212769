"""The verdict rules on metrics a benchmark could return: labels, agreement, synthetic inputs."""

from __future__ import annotations

from typing import Any

import pytest

from app.compression.measure.metrics import (
    Accuracy,
    Fidelity,
    Host,
    LatencyStats,
    MetricChange,
    Metrics,
    ModelMetrics,
)
from app.compression.measure.objective import Objective, Verdict
from app.compression.measure.verdict import judge, verdict_warning

ONE_POINT = Objective()  # max_accuracy_drop 0.01


def _block() -> ModelMetrics:
    latency = LatencyStats(p50=1.0, p90=1.0, p99=1.0, mean=1.0, std=0.0, cv=0.0)
    return ModelMetrics(size_bytes=100, param_count=10, latency_ms=latency, runs=3, load_ms=1.0)


def _metrics(
    *, accuracy: Accuracy | None = None, inputs: str = "dataset", **fidelity: Any
) -> Metrics:
    return Metrics(
        original=_block(),
        compressed=_block(),
        compression_ratio=4.0,
        speedup_ratio=1.5,
        pruning_rate=0.0,
        sparsity=0.0,
        fidelity=Fidelity(
            max_abs_error=0.1,
            mean_abs_error=0.01,
            cosine_similarity=fidelity.pop("cosine_similarity", 0.999),
            samples=200,
            inputs=inputs,  # type: ignore[arg-type]
            **fidelity,
        ),
        accuracy=accuracy,
        host=Host(cpu="test", cores=1, onnxruntime="1", provider="CPUExecutionProvider"),
    )


def _top1(original: float, compressed: float) -> Accuracy:
    return Accuracy(
        metric="top1",
        original=original,
        compressed=compressed,
        delta=compressed - original,
        samples=200,
        top5=MetricChange(original=1.0, compressed=1.0, delta=0.0),
    )


def test_class_labels_within_the_budget_are_verified() -> None:
    judgement = judge(_metrics(accuracy=_top1(0.95, 0.945)), ONE_POINT)
    assert judgement.verdict == Verdict.VERIFIED
    assert judgement.basis == "labels" and judgement.metric == "top1"
    assert judgement.delta == pytest.approx(-0.005)
    assert (judgement.original, judgement.compressed) == (0.95, 0.945)
    assert verdict_warning(judgement) is None


def test_a_drop_of_exactly_the_budget_is_within_it() -> None:
    # 0.95 - 0.94 is 0.010000000000000009 in floats: still one point
    assert judge(_metrics(accuracy=_top1(0.95, 0.94)), ONE_POINT).verdict == Verdict.VERIFIED


def test_class_labels_over_the_budget_are_rejected_and_say_by_how_much() -> None:
    judgement = judge(_metrics(accuracy=_top1(0.95, 0.90)), ONE_POINT)
    assert judgement.verdict == Verdict.REJECTED
    assert judgement.delta == pytest.approx(-0.05)
    assert "over the budget of 0.01 by 0.04" in judgement.reason
    warning = verdict_warning(judgement)
    assert warning is not None and "over the accuracy budget" in warning
    # a looser objective takes the same model
    loose = Objective(max_accuracy_drop=0.06)
    assert judge(_metrics(accuracy=_top1(0.95, 0.90)), loose).verdict == Verdict.VERIFIED


def test_labels_win_over_agreement() -> None:
    # the outputs moved a lot, yet the labels are what the user asked to keep
    metrics = _metrics(accuracy=_top1(0.95, 0.95), top1_agreement=0.5, cosine_similarity=0.6)
    assert judge(metrics, ONE_POINT).verdict == Verdict.VERIFIED


def test_regression_error_rising_is_a_loss() -> None:
    def mse(original: float, compressed: float) -> Accuracy:
        return Accuracy(
            metric="mse",
            original=original,
            compressed=compressed,
            delta=compressed - original,
            samples=50,
        )

    worse = judge(_metrics(accuracy=mse(0.10, 0.13)), ONE_POINT)
    assert worse.verdict == Verdict.REJECTED and worse.metric == "mse"
    assert worse.delta == pytest.approx(-0.03)  # higher is better: original - compressed
    assert "lower is better" in worse.reason
    assert judge(_metrics(accuracy=mse(0.10, 0.105)), ONE_POINT).verdict == Verdict.VERIFIED
    # an error that fell is no loss at all
    better = judge(_metrics(accuracy=mse(0.10, 0.05)), ONE_POINT)
    assert better.verdict == Verdict.VERIFIED and better.delta == pytest.approx(0.05)


def test_sequence_exact_match_is_judged_like_any_share() -> None:
    accuracy = Accuracy(
        metric="exact_match",
        original=0.9,
        compressed=0.8,
        delta=-0.1,
        samples=10,
        position_accuracy=MetricChange(original=0.98, compressed=0.97, delta=-0.01),
    )
    judgement = judge(_metrics(accuracy=accuracy), ONE_POINT)
    assert judgement.verdict == Verdict.REJECTED and judgement.metric == "exact_match"


def test_without_labels_argmax_agreement_decides() -> None:
    kept = judge(_metrics(top1_agreement=0.995), ONE_POINT)
    assert kept.verdict == Verdict.VERIFIED
    assert kept.basis == "agreement" and kept.metric == "top1_agreement"
    assert (kept.original, kept.compressed) == (1.0, 0.995)
    # magika's int8-dynamic: cosine 0.9999 and yet 1.6% of files relabelled
    relabelled = judge(_metrics(top1_agreement=0.984, cosine_similarity=0.9999), ONE_POINT)
    assert relabelled.verdict == Verdict.REJECTED
    assert "no labels" in relabelled.reason
    positions = judge(_metrics(position_agreement=0.97), ONE_POINT)
    assert positions.verdict == Verdict.REJECTED and positions.metric == "position_agreement"


def test_without_scores_the_relative_error_decides() -> None:
    close = judge(_metrics(relative_error=0.004), ONE_POINT)
    assert close.verdict == Verdict.VERIFIED and close.metric == "relative_error"
    assert close.delta == pytest.approx(-0.004)
    far = judge(_metrics(relative_error=0.08, cosine_similarity=0.997), ONE_POINT)
    assert far.verdict == Verdict.REJECTED and "cosine 0.9970" in far.reason
    assert judge(_metrics(relative_error=0.08), Objective(max_accuracy_drop=0.1)).verdict == (
        Verdict.VERIFIED
    )


def test_new_inf_or_nan_outputs_are_rejected() -> None:
    metrics = _metrics(relative_error=0.0, nonfinite_mismatches=3)
    assert judge(metrics, ONE_POINT).verdict == Verdict.REJECTED


def test_synthetic_inputs_never_give_a_verdict() -> None:
    metrics = _metrics(inputs="synthetic", top1_agreement=1.0, cosine_similarity=1.0)
    judgement = judge(metrics, ONE_POINT)
    assert judgement.verdict == Verdict.UNVERIFIED and judgement.basis == "synthetic"
    assert "real evaluation data" in judgement.reason
    warning = verdict_warning(judgement)
    assert warning is not None and "real evaluation data" in warning


def test_no_metrics_is_no_verdict() -> None:
    assert judge(None, ONE_POINT).verdict == Verdict.UNVERIFIED
