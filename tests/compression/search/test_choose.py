"""The recommendation of an auto search: objectives, the noise band, the Pareto front."""

from __future__ import annotations

from typing import Any

from app.compression.measure.objective import Objective, Optimize, Verdict
from app.compression.search.choose import (
    NO_CANDIDATE_WITHIN_BUDGET,
    NO_REAL_DATA,
    CandidateResult,
    choose,
    pareto_front,
)


def cand(
    job_id: str, size: float, speed: float, delta: float = -0.001, **kw: Any
) -> CandidateResult:
    values: dict[str, Any] = {
        "job_id": job_id,
        "label": job_id,
        "succeeded": True,
        "compression_ratio": size,
        "speedup_ratio": speed,
        "latency_cv_original": 0.02,
        "latency_cv_compressed": 0.02,
        "metric": "top1",
        "delta": delta,
        "verdict": Verdict.VERIFIED,
    }
    return CandidateResult(**{**values, **kw})


def test_balanced_takes_the_best_size_times_speed_among_verified() -> None:
    found = choose(
        [
            cand("static", 3.8, 1.4),
            cand("dynamic", 3.9, 1.2),
            cand("broken", 4.0, 2.5, delta=-0.2, verdict=Verdict.REJECTED),
        ],
        Objective(),
    )

    assert found.recommended == "static" and found.reason is None
    assert found.explanation.startswith("static: 3.80x smaller, 1.40x faster, -0.1 points")
    assert "dynamic 3.90x/1.20x, verified" in found.explanation


def test_balanced_skips_a_candidate_slower_beyond_the_noise_band() -> None:
    slow = cand("fp16", 2.0, 0.8)  # 20% slower: far past a band of 5%
    within_noise = cand("dynamic", 1.5, 0.97)  # 3% slower: inside the band

    assert choose([slow, within_noise], Objective()).recommended == "dynamic"


def test_the_noise_band_grows_with_the_measured_spread() -> None:
    noisy = cand("fp16", 2.0, 0.8, latency_cv_original=0.15, latency_cv_compressed=0.15)

    assert noisy.noise > 0.2 and noisy.not_slower
    assert cand("quiet", 2.0, 0.8).noise == 0.05


def test_latency_ties_within_noise_go_to_the_smaller() -> None:
    candidates = [cand("a", 2.0, 1.50), cand("b", 3.5, 1.47), cand("c", 4.0, 1.1)]

    assert choose(candidates, Objective(optimize=Optimize.LATENCY)).recommended == "b"


def test_size_takes_the_smallest_that_is_not_slower() -> None:
    candidates = [cand("int4", 6.0, 0.5), cand("static", 3.8, 1.1), cand("fp16", 2.0, 1.0)]

    assert choose(candidates, Objective(optimize=Optimize.SIZE)).recommended == "static"


def test_nothing_within_budget_is_an_answer_with_a_reason() -> None:
    found = choose(
        [
            cand("a", 4.0, 2.0, delta=-0.05, verdict=Verdict.REJECTED),
            cand("b", 1, 1, succeeded=False),
        ],
        Objective(),
    )

    assert found.recommended is None and found.reason == NO_CANDIDATE_WITHIN_BUDGET
    assert "b failed" in found.explanation


def test_without_real_data_nothing_is_recommended() -> None:
    found = choose([cand("a", 4.0, 2.0, delta=None, verdict=Verdict.UNVERIFIED)], Objective())

    assert found.recommended is None and found.reason == NO_REAL_DATA
    assert "real evaluation data" in found.explanation


def test_pareto_front_keeps_every_non_dominated_trade_off() -> None:
    candidates = [
        cand("small", 4.0, 1.0, delta=-0.009),
        cand("fast", 2.0, 2.0, delta=-0.005),
        cand("exact", 1.5, 1.0, delta=0.0),
        cand("dominated", 1.9, 1.9, delta=-0.006),
        cand("failed", 9.0, 9.0, succeeded=False),
    ]

    assert pareto_front(candidates) == ["small", "fast", "exact"]
