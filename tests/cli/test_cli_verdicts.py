"""What the CLI says, and how it exits, for verdicts and auto searches."""

from __future__ import annotations

from typing import Any

import pytest

from app.cli.commands import report
from app.cli.output import summary

CANDIDATES = [
    {"job_id": "a", "label": "dynamic int8", "status": "succeeded", "compression_ratio": 3.1,
     "speedup_ratio": 1.4, "speedup_noise": 0.05, "metric": "top1", "delta": -0.003,
     "verdict": "verified", "pareto": True, "recommended": True},
    {"job_id": "b", "label": "fp16", "status": "succeeded", "compression_ratio": 2.0,
     "speedup_ratio": 0.99, "speedup_noise": 0.05, "metric": "top1", "delta": 0.0,
     "verdict": "verified", "pareto": True, "recommended": False},
    {"job_id": "c", "label": "static QDQ", "status": "failed", "pareto": False,
     "recommended": False},
]  # fmt: skip


def auto_job(**fields: Any) -> dict[str, Any]:
    return {"id": "p", "kind": "auto", "status": "succeeded", "candidates": CANDIDATES, **fields}


def test_auto_with_a_recommendation_prints_the_table_and_exits_0(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = report(auto_job(output_model_id="m", explanation="dynamic int8: best"), as_json=False)

    out = capsys.readouterr().out
    assert code == 0
    starred = [line for line in out.splitlines() if line.startswith("* ")]
    assert len(starred) == 1 and "dynamic int8" in starred[0] and "1.40±0.05x" in starred[0]
    assert "static QDQ" in out and "failed" in out and "dynamic int8: best" in out


def test_auto_without_a_recommendation_says_why_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    job = auto_job(output_model_id=None, recommendation_reason="no_candidate_within_budget")

    assert report(job, as_json=False) == 1
    assert "no recommendation: no_candidate_within_budget" in capsys.readouterr().err


def test_a_rejected_verdict_exits_1_and_unverified_asks_for_real_data(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rejected = {"id": "j", "kind": "compress", "status": "succeeded", "verdict": "rejected",
                "verdict_detail": {"reason": "top1 fell 8.3 points"}}  # fmt: skip
    unverified = {**rejected, "verdict": "unverified", "verdict_detail": None}

    assert report(rejected, as_json=False) == 1
    assert "verdict: rejected: top1 fell 8.3 points" in capsys.readouterr().err
    assert report(unverified, as_json=False) == 0
    assert "real evaluation data is needed" in capsys.readouterr().err
    assert "verdict" not in summary({"id": "j", "status": "running"})
