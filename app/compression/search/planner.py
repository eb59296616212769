"""Which candidates an automatic search tries, chosen from the model's pre-flight analysis.

The rules follow what measurements on real exports showed:
- Conv-heavy graphs get static QDQ with per-channel int8 weights and uint8 activations (ORT's
  x86 recommendation); minmax calibration always, entropy and percentile too when the user gave
  calibration data (on synthetic inputs they only fit noise).
- MatMul, LSTM/GRU and attention graphs get dynamic int8: per-channel off and on, and with the
  embedding tables when the graph has embedding Gathers. LSTM joins the op types when present
  (onnxruntime has no dynamic GRU: its MatMuls are still taken).
- Graphs with many large MatMul weights get int4 weight-only (MatMulNBits).
- fp16 is always a candidate: the safe size win when no 8-bit variant keeps the budget. On a
  CPU without fast float16 it will not be faster, and its label says so.
- Pruning never: it removes weights the model was trained to use, and it keeps its accuracy
  only with fine-tuning, which this service does not do.

Candidates come best-first for the objective; the first of each family survives the cut to
`max_candidates`, so a short list still holds the safe fp16 fallback.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from app.compression.graph.analysis_report import ModelAnalysis
from app.compression.measure.objective import Objective, Optimize
from app.compression.passes.recipes import Recipe

DEFAULT_MAX_CANDIDATES = 6
Family = Literal["static", "dynamic", "weight_only", "fp16"]
QUANTIZERS = ("quantize_static", "quantize_dynamic")
# CPU flags that give float16 arithmetic its own speed (otherwise ORT computes it via float32).
FAST_FP16_FEATURES = frozenset({"avx512_fp16", "amx_fp16", "asimdhp"})
# Families best-first per objective: int8 first for speed, the fewest bits first for size.
_FAMILY_ORDER: dict[Optimize, tuple[str, ...]] = {
    Optimize.LATENCY: ("int8", "weight_only", "fp16"),
    Optimize.SIZE: ("weight_only", "int8", "fp16"),
    Optimize.BALANCED: ("int8", "fp16", "weight_only"),
}


class CandidatePlan(BaseModel):
    """One candidate of an automatic search: a recipe, and a label a person reads."""

    label: str = Field(description='What it is, e.g. "static QDQ per-channel (entropy)".')
    recipe: Recipe = Field(description="The recipe its candidate job runs.")
    family: str = Field(description="static, dynamic, weight_only or fp16.")


def _plan(label: str, family: Family, passes: list[dict[str, Any]]) -> CandidatePlan:
    return CandidatePlan(
        label=label, family=family, recipe=Recipe.model_validate({"passes": passes})
    )


def _static(has_calibration: bool) -> list[CandidatePlan]:
    methods = ["minmax", "entropy", "percentile"] if has_calibration else ["minmax"]
    return [
        _plan(
            f"static QDQ per-channel ({method})",
            "static",
            [
                {
                    "type": "quantize_static",
                    "format": "qdq",
                    "per_channel": True,
                    "activation_type": "uint8",
                    "weight_type": "int8",
                    "calibration_method": method,
                }
            ],
        )
        for method in methods
    ]


def _dynamic(analysis: ModelAnalysis) -> list[CandidatePlan]:
    op_types = ["MatMul", "Gemm", "Attention"]
    if analysis.op_counts.get("LSTM"):
        op_types.append("LSTM")
    variants = [(False, False), (True, False)]
    if analysis.flags.has_embeddings:
        variants.append((False, True))
    plans = []
    for per_channel, embeddings in variants:
        label = "dynamic int8" + (" per-channel" if per_channel else "")
        label += " with embeddings" if embeddings else ""
        config = {
            "type": "quantize_dynamic",
            "per_channel": per_channel,
            "op_types": op_types,
            "quantize_embeddings": embeddings,
        }
        plans.append(_plan(label, "dynamic", [config]))
    return plans


def _weight_only() -> CandidatePlan:
    config = {"type": "quantize_weight_only", "bits": 4, "block_size": 32}
    return _plan("int4 weight-only (block 32)", "weight_only", [config])


def _fp16(cpu_features: set[str] | None) -> CandidatePlan:
    label = "fp16"
    if cpu_features is not None and not cpu_features & FAST_FP16_FEATURES:
        label += " (size only: these CPUs have no fast float16, it will not be faster)"
    return _plan(label, "fp16", [{"type": "convert_fp16"}])


def _touches(analysis: ModelAnalysis, pass_type: str) -> int:
    return sum(sum(c.touches.values()) for c in analysis.passes if c.pass_type == pass_type)


def _int8(analysis: ModelAnalysis, has_calibration: bool) -> list[CandidatePlan]:
    """The 8-bit candidates, the family that fits the graph first."""
    flags = analysis.flags
    matmul_like = (
        flags.matmul_heavy or flags.has_recurrent or flags.has_attention or flags.has_embeddings
    )
    wants_dynamic = matmul_like and bool(_touches(analysis, "quantize_dynamic"))
    wants_static = flags.conv_heavy and bool(_touches(analysis, "quantize_static"))
    if not wants_dynamic and not wants_static:
        # Neither trait stands out: try both where they apply.
        wants_dynamic = bool(_touches(analysis, "quantize_dynamic"))
        wants_static = bool(_touches(analysis, "quantize_static"))
    static = _static(has_calibration) if wants_static else []
    dynamic = _dynamic(analysis) if wants_dynamic else []
    # Recurrent graphs lose most under static activations (no static LSTM, CRNN exports).
    static_first = flags.conv_heavy and not flags.has_recurrent
    return static + dynamic if static_first else dynamic + static


def _shortlist(ordered: list[CandidatePlan], limit: int) -> list[CandidatePlan]:
    """The first `limit`, keeping the head of every family when there is room."""
    heads: list[CandidatePlan] = []
    for plan in ordered:
        if all(h.family != plan.family for h in heads):
            heads.append(plan)
    chosen = heads[:limit]
    for plan in ordered:
        if len(chosen) >= limit:
            break
        if plan not in chosen:
            chosen.append(plan)
    return [plan for plan in ordered if plan in chosen]


def plan_candidates(
    analysis: ModelAnalysis,
    objective: Objective,
    *,
    has_calibration: bool,
    cpu_features: set[str] | None = None,
) -> list[CandidatePlan]:
    """Candidates to try for this model and objective, best-first, at most max_candidates."""
    int8 = _int8(analysis, has_calibration)
    if objective.optimize == Optimize.SIZE:
        # The embedding tables are often most of a text model's bytes.
        int8.sort(key=lambda plan: "with embeddings" not in plan.label)
    groups: dict[str, list[CandidatePlan]] = {
        "int8": int8,
        "weight_only": [_weight_only()] if analysis.flags.large_matmul_params else [],
        "fp16": [_fp16(cpu_features)] if _touches(analysis, "convert_fp16") else [],
    }
    ordered = [plan for group in _FAMILY_ORDER[objective.optimize] for plan in groups[group]]
    return _shortlist(ordered, objective.max_candidates or DEFAULT_MAX_CANDIDATES)


def fallback_plan(
    plan: CandidatePlan, sensitive_nodes: list[str], round: int
) -> CandidatePlan | None:
    """The same recipe with its quantizer leaving the next 2**round most sensitive nodes (of
    `sensitive_nodes`, most sensitive first) in float; None if there is no quantizer or no
    node left to exclude. Round 0 adds one node, round 1 two more, round 2 four more..."""
    passes = plan.recipe.model_dump(mode="json")["passes"]
    index = next((i for i, p in enumerate(passes) if p["type"] in QUANTIZERS), None)
    if index is None:
        return None
    excluded: list[str] = list(passes[index].get("nodes_to_exclude") or [])
    fresh = [n for n in dict.fromkeys(sensitive_nodes) if n not in excluded]
    added = fresh[: 2 ** max(round, 0)]
    if not added:
        return None
    passes[index]["nodes_to_exclude"] = excluded + added
    base = plan.label.split(" excluding ", 1)[0]
    count = len(excluded) + len(added)
    label = f"{base} excluding {count} node{'s' if count != 1 else ''}"
    recipe = Recipe.model_validate({"passes": passes})
    return CandidatePlan(label=label, recipe=recipe, family=plan.family)
