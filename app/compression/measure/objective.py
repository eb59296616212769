"""What a user asks of a compression (the objective), and what the service concludes (verdict)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Optimize(StrEnum):
    BALANCED = "balanced"  # best size ratio x speedup, not slower than the original beyond noise
    LATENCY = "latency"  # fastest; ties within noise go to the smaller
    SIZE = "size"  # smallest that is not slower than the original beyond noise


class Objective(BaseModel):
    """The goal of a job: what to optimize, and how much accuracy may be spent on it."""

    model_config = ConfigDict(extra="forbid")

    optimize: Optimize = Field(default=Optimize.BALANCED, description="What to make better.")
    max_accuracy_drop: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="Largest loss allowed, in the units of the evaluation metric (0.01 = one "
        "point of top-1 accuracy).",
    )
    max_candidates: int | None = Field(
        default=None, ge=1, le=32, description="Auto only: most candidates to try."
    )
    time_budget_s: int | None = Field(
        default=None, ge=60, le=86_400, description="Auto only: wall time the search may take."
    )
    blank_index: int | None = Field(
        default=None,
        ge=0,
        description="Sequence labels only: the CTC blank class. When given, predictions collapse "
        "repeats and drop blanks (and labels drop blanks) before exact match.",
    )


class Verdict(StrEnum):
    VERIFIED = "verified"  # within budget on the user's real data
    REJECTED = "rejected"  # over budget: kept for inspection, never recommended
    UNVERIFIED = "unverified"  # only synthetic inputs: real data is needed for a verdict


class Judgement(BaseModel):
    """A verdict with what it rests on."""

    verdict: Verdict
    metric: str | None = Field(
        default=None, description='What was compared, e.g. "top1", "exact_match", "agreement".'
    )
    original: float | None = Field(default=None, description="The metric on the original model.")
    compressed: float | None = Field(default=None, description="The metric on the compressed one.")
    delta: float | None = Field(
        default=None, description="compressed - original (higher is better)."
    )
    basis: str = Field(
        description='"labels" (the eval data\'s labels), "agreement" (with the original\'s outputs '
        'on real inputs) or "synthetic" (drawn inputs only).'
    )
    reason: str = Field(description="One sentence a person can act on.")
