"""The verdict of a compression: is it within the objective's accuracy budget on real data?

One rule for every basis: `delta` is the change on a higher-is-better scale, and the job is
verified when the loss `-delta` is at most `max_accuracy_drop`, else rejected.

- labels: the accuracy block's primary metric (top1, exact_match, position_accuracy: shares;
  mse: an error, so delta = original mse - compressed mse and a rise is a loss).
- agreement (real inputs, no usable labels): the share of samples (top1_agreement), of
  CTC-decoded sequences given a blank index (sequence_agreement) or of positions
  (position_agreement) whose argmax is the original's, against the original's 1.0. With no
  score output (embeddings, maps), the relative error ||orig - new|| / ||orig|| of all outputs
  against the original's 0: delta = -relative error, so outputs may move by at most
  max_accuracy_drop of their norm. Inf/nan the original does not give is a rejection.
- synthetic inputs only: unverified, whatever the cosine; real data is needed.
"""

from __future__ import annotations

from app.compression.measure.metrics import Accuracy, Fidelity, Metrics
from app.compression.measure.objective import Judgement, Objective, Verdict

# Float rounding must not turn a drop of exactly the budget into a rejection.
_TOLERANCE = 1e-9
_ERROR_METRICS = frozenset({"mse", "relative_error"})


def judge(metrics: Metrics | None, objective: Objective) -> Judgement:
    """The verdict of a compressed model's metrics against the objective's accuracy budget."""
    if metrics is None:
        return Judgement(
            verdict=Verdict.UNVERIFIED, basis="none", reason="nothing was measured: no verdict"
        )
    if metrics.accuracy is not None:
        return _on_labels(metrics.accuracy, objective)
    fidelity = metrics.fidelity
    if fidelity is None or fidelity.inputs == "synthetic":
        return Judgement(
            verdict=Verdict.UNVERIFIED,
            basis="synthetic",
            reason="measured on synthetic inputs only: real evaluation data (eval_dataset_id) "
            "is needed for a verdict",
        )
    return _on_agreement(fidelity, objective)


def _on_labels(accuracy: Accuracy, objective: Objective) -> Judgement:
    metric = accuracy.metric
    delta = -accuracy.delta if metric in _ERROR_METRICS else accuracy.delta
    where = f"on {accuracy.samples} labelled samples"
    return _decide(
        metric, accuracy.original, accuracy.compressed, delta, "labels", where, objective
    )


def _on_agreement(fidelity: Fidelity, objective: Objective) -> Judgement:
    where = f"agreement with the original on {fidelity.samples} real inputs (no labels)"
    if fidelity.nonfinite_mismatches:
        return Judgement(
            verdict=Verdict.REJECTED,
            metric="nonfinite_mismatches",
            basis="agreement",
            reason=f"the compressed model gives {fidelity.nonfinite_mismatches} inf/nan values "
            f"the original does not, {where}",
        )
    for metric, share in (
        ("top1_agreement", fidelity.top1_agreement),
        ("sequence_agreement", fidelity.sequence_agreement),
        ("position_agreement", fidelity.position_agreement),
    ):
        if share is not None:
            return _decide(metric, 1.0, share, share - 1.0, "agreement", where, objective)
    error = fidelity.relative_error
    if error is None:
        return Judgement(
            verdict=Verdict.UNVERIFIED,
            basis="agreement",
            reason=f"the original's outputs are all zero on the evaluation inputs: no scale "
            f"for a relative error, so no verdict ({where})",
        )
    where += f", cosine {fidelity.cosine_similarity:.4f}"
    return _decide("relative_error", 0.0, error, -error, "agreement", where, objective)


def _decide(
    metric: str,
    original: float,
    compressed: float,
    delta: float,
    basis: str,
    where: str,
    objective: Objective,
) -> Judgement:
    budget = objective.max_accuracy_drop
    loss = -delta
    within = loss <= budget + _TOLERANCE
    change = f"{metric} {original:.4g} -> {compressed:.4g}"
    if metric in _ERROR_METRICS:
        change += " (an error: lower is better, delta is original - compressed)"
    if within:
        reason = f"{change}, a loss of {max(loss, 0.0):.4g} within the budget of {budget:g}"
    else:
        over = loss - budget
        reason = f"{change}, a loss of {loss:.4g}: over the budget of {budget:g} by {over:.4g}"
    return Judgement(
        verdict=Verdict.VERIFIED if within else Verdict.REJECTED,
        metric=metric,
        original=original,
        compressed=compressed,
        delta=delta,
        basis=basis,
        reason=f"{reason}, {where}",
    )


def verdict_warning(judgement: Judgement) -> str | None:
    """What the job's warnings say about its verdict: over budget, or not judged on real data."""
    if judgement.verdict == Verdict.REJECTED:
        return (
            f"rejected: over the accuracy budget ({judgement.reason}); the model is kept for "
            "inspection only"
        )
    if judgement.verdict == Verdict.UNVERIFIED:
        return f"unverified: {judgement.reason}"
    return None
