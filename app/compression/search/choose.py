"""Choosing the recommendation of an auto search: a pure function of its candidates' results.

Only candidates that succeeded with verdict `verified` (within the accuracy budget on the user's
own data) can be recommended. Without any real data every verdict is `unverified`: the search
recommends nothing (reason `no_real_data`) rather than a model nobody checked, and still lists
every candidate with its size and speed.

"Not slower beyond noise": a candidate's speedup must be at least 1 - band, where the band is
the combined run-to-run spread of both latencies, sqrt(cv_original^2 + cv_compressed^2), and at
least 5% (timings on a shared machine are rarely steadier than that).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from app.compression.measure.objective import Objective, Optimize, Verdict

MIN_NOISE_BAND = 0.05
NO_CANDIDATE_WITHIN_BUDGET = "no_candidate_within_budget"
NO_REAL_DATA = "no_real_data"
# Metrics in [0, 1] whose deltas read best as points (0.01 = one point).
_SHARE_METRICS = frozenset({"top1", "top5", "exact_match", "agreement", "top1_agreement"})


class CandidateResult(BaseModel):
    """What one finished candidate measured, as the chooser needs it."""

    job_id: str
    label: str
    succeeded: bool
    compression_ratio: float | None = None
    speedup_ratio: float | None = None
    latency_cv_original: float | None = None
    latency_cv_compressed: float | None = None
    metric: str | None = None
    delta: float | None = None
    verdict: Verdict | None = None

    @property
    def measured(self) -> bool:
        return (
            self.succeeded and self.compression_ratio is not None and self.speedup_ratio is not None
        )

    @property
    def noise(self) -> float:
        """Relative run-to-run spread of the speedup: the band within which speeds tie."""
        cvs = [cv or 0.0 for cv in (self.latency_cv_original, self.latency_cv_compressed)]
        return max(MIN_NOISE_BAND, math.sqrt(sum(cv * cv for cv in cvs)))

    @property
    def not_slower(self) -> bool:
        return (self.speedup_ratio or 0.0) >= 1.0 - self.noise


class Choice(BaseModel):
    """The recommendation (a candidate's job id) or why there is none, and the Pareto front."""

    recommended: str | None
    reason: str | None = Field(description="Why nothing was recommended; None when something was.")
    pareto: list[str] = Field(description="Job ids on the front of size, speed and accuracy.")
    explanation: str


def _dominates(a: CandidateResult, b: CandidateResult) -> bool:
    def key(c: CandidateResult) -> tuple[float, float, float]:
        delta = c.delta if c.delta is not None else -math.inf
        return (c.compression_ratio or 0.0, c.speedup_ratio or 0.0, delta)

    ka, kb = key(a), key(b)
    return all(x >= y for x, y in zip(ka, kb, strict=True)) and ka != kb


def pareto_front(candidates: list[CandidateResult]) -> list[str]:
    """Measured candidates no other one beats on size, speed and accuracy at once."""
    measured = [c for c in candidates if c.measured]
    return [c.job_id for c in measured if not any(_dominates(o, c) for o in measured)]


def _pick(eligible: list[CandidateResult], optimize: Optimize) -> CandidateResult | None:
    if optimize == Optimize.LATENCY:
        fastest = max(eligible, key=lambda c: c.speedup_ratio or 0.0, default=None)
        if fastest is None:
            return None
        # Speeds within the fastest one's noise are a tie: the smaller model wins it.
        floor = (fastest.speedup_ratio or 0.0) * (1.0 - fastest.noise)
        tied = [c for c in eligible if (c.speedup_ratio or 0.0) >= floor]
        return max(tied, key=lambda c: (c.compression_ratio or 0.0, c.speedup_ratio or 0.0))
    if optimize == Optimize.SIZE:
        return max(
            eligible,
            key=lambda c: (c.compression_ratio or 0.0, c.speedup_ratio or 0.0),
            default=None,
        )
    return max(
        eligible,
        key=lambda c: (c.compression_ratio or 0.0) * (c.speedup_ratio or 0.0),
        default=None,
    )


def describe_delta(metric: str | None, delta: float | None) -> str:
    if delta is None:
        return "accuracy not measured"
    if metric in _SHARE_METRICS:
        return f"{delta * 100:+.1f} points of {metric}"
    return f"{metric or 'metric'} {delta:+.3g}"


def _one_line(c: CandidateResult) -> str:
    return (
        f"{c.label}: {c.compression_ratio or 0:.2f}x smaller, {c.speedup_ratio or 0:.2f}x "
        f"faster, {describe_delta(c.metric, c.delta)}"
    )


def _others(candidates: list[CandidateResult], chosen: CandidateResult | None) -> str:
    parts = []
    for c in candidates:
        if c is chosen:
            continue
        if not c.succeeded:
            parts.append(f"{c.label} failed")
        elif c.measured:
            verdict = f", {c.verdict.value}" if c.verdict else ""
            parts.append(f"{c.label} {c.compression_ratio:.2f}x/{c.speedup_ratio:.2f}x{verdict}")
    return "; ".join(parts[:5])


def choose(candidates: list[CandidateResult], objective: Objective) -> Choice:
    """The candidate to recommend for the objective, or the reason there is none."""
    front = pareto_front(candidates)
    verified = [c for c in candidates if c.measured and c.verdict == Verdict.VERIFIED]
    eligible = [c for c in verified if c.not_slower]
    chosen = _pick(eligible, objective.optimize)
    others = _others(candidates, chosen)
    if chosen is not None:
        text = f"{_one_line(chosen)} (best for {objective.optimize.value})"
        return Choice(
            recommended=chosen.job_id,
            reason=None,
            pareto=front,
            explanation=f"{text}; {others}" if others else text,
        )
    judged = [c for c in candidates if c.verdict in (Verdict.VERIFIED, Verdict.REJECTED)]
    if candidates and not judged and any(c.verdict == Verdict.UNVERIFIED for c in candidates):
        reason = NO_REAL_DATA
        text = "no candidate could be verified: real evaluation data is needed (eval dataset)"
    else:
        reason = NO_CANDIDATE_WITHIN_BUDGET
        if verified:
            text = "every candidate within the accuracy budget was slower than the original"
        else:
            text = (
                f"no candidate kept within {objective.max_accuracy_drop:g} of the original's "
                "accuracy"
            )
    return Choice(
        recommended=None,
        reason=reason,
        pareto=front,
        explanation=f"{text}; {others}" if others else text,
    )
