"""plan_candidates picks candidates from the analysis; fallback_plan excludes sensitive nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.compression.graph.model_analysis import ModelAnalysis, analyze_model
from app.compression.measure.objective import Objective, Optimize
from app.compression.passes.configs import QuantizeDynamicConfig, QuantizeStaticConfig
from app.compression.passes.recipes import Recipe
from app.compression.search.planner import CandidatePlan, fallback_plan, plan_candidates
from tests.builders_exports import build_embedding_encoder
from tests.builders_recurrent import build_crnn_lstm


@pytest.fixture(scope="module")
def crnn(tmp_path_factory: pytest.TempPathFactory) -> ModelAnalysis:
    return analyze_model(build_crnn_lstm(tmp_path_factory.mktemp("crnn") / "crnn.onnx"))


def _types(plan: CandidatePlan) -> list[str]:
    return [p.type for p in plan.recipe.passes]


def test_mlp_gets_dynamic_first(mlp_path: Path) -> None:
    plans = plan_candidates(analyze_model(mlp_path), Objective(), has_calibration=True)

    assert plans[0].family == "dynamic" and _types(plans[0]) == ["quantize_dynamic"]
    families = [p.family for p in plans]
    assert "static" not in families and "fp16" in families
    # Its 1.5M MatMul weights also make it an int4 weight-only case.
    assert "weight_only" in families
    per_channel = {p.recipe.passes[0].per_channel for p in plans if p.family == "dynamic"}
    assert per_channel == {False, True}


def test_cnn_gets_static_qdq_per_channel_uint8_first(conv_path: Path) -> None:
    plans = plan_candidates(analyze_model(conv_path), Objective(), has_calibration=True)

    first = plans[0].recipe.passes[0]
    assert isinstance(first, QuantizeStaticConfig)
    assert (first.format, first.per_channel, first.activation_type) == ("qdq", True, "uint8")
    methods = [p.recipe.passes[0].calibration_method for p in plans if p.family == "static"]
    assert methods == ["minmax", "entropy", "percentile"]


def test_without_calibration_data_only_minmax_is_tried(conv_path: Path) -> None:
    plans = plan_candidates(analyze_model(conv_path), Objective(), has_calibration=False)

    static = [p for p in plans if p.family == "static"]
    assert [p.recipe.passes[0].calibration_method for p in static] == ["minmax"]


def test_lstm_model_gets_dynamic_with_lstm(crnn: ModelAnalysis) -> None:
    plans = plan_candidates(crnn, Objective(optimize=Optimize.LATENCY), has_calibration=True)

    first = plans[0].recipe.passes[0]
    assert isinstance(first, QuantizeDynamicConfig) and "LSTM" in first.op_types


def test_fp16_is_always_there_and_says_when_it_will_not_be_faster(crnn: ModelAnalysis) -> None:
    slow = plan_candidates(crnn, Objective(), has_calibration=False, cpu_features={"avx2"})
    fast = plan_candidates(crnn, Objective(), has_calibration=False, cpu_features={"avx512_fp16"})

    [slow_fp16] = [p for p in slow if p.family == "fp16"]
    [fast_fp16] = [p for p in fast if p.family == "fp16"]
    assert _types(slow_fp16) == ["convert_fp16"] and "not be faster" in slow_fp16.label
    assert fast_fp16.label == "fp16"


def test_objective_orders_the_families(mlp_path: Path) -> None:
    analysis = analyze_model(mlp_path)

    def order(optimize: Optimize) -> list[str]:
        plans = plan_candidates(analysis, Objective(optimize=optimize), has_calibration=True)
        return list(dict.fromkeys(p.family for p in plans))

    assert order(Optimize.LATENCY) == ["dynamic", "weight_only", "fp16"]
    assert order(Optimize.SIZE) == ["weight_only", "dynamic", "fp16"]
    assert order(Optimize.BALANCED) == ["dynamic", "fp16", "weight_only"]


def test_embeddings_variant_only_with_embedding_gathers(tmp_path: Path, mlp_path: Path) -> None:
    encoder = analyze_model(build_embedding_encoder(tmp_path / "enc.onnx"))
    with_tables = plan_candidates(encoder, Objective(optimize=Optimize.SIZE), has_calibration=True)
    plain = plan_candidates(analyze_model(mlp_path), Objective(), has_calibration=True)

    assert with_tables[0].recipe.passes[0].quantize_embeddings
    assert not any(getattr(p.recipe.passes[0], "quantize_embeddings", False) for p in plain)


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_max_candidates_is_respected_and_keeps_family_heads(conv_path: Path, limit: int) -> None:
    objective = Objective(max_candidates=limit)
    plans = plan_candidates(analyze_model(conv_path), objective, has_calibration=True)

    assert len(plans) == limit
    assert plans[0].family == "static"
    if limit >= 2:
        assert plans[-1].family == "fp16"  # the safe size candidate survives the cut


def test_default_is_at_most_six_and_every_recipe_validates(tmp_path: Path) -> None:
    analysis = analyze_model(build_embedding_encoder(tmp_path / "enc.onnx"))
    plans = plan_candidates(analysis, Objective(), has_calibration=True, cpu_features=set())

    assert 1 <= len(plans) <= 6
    for plan in plans:
        Recipe.model_validate(plan.recipe.model_dump(mode="json"))
    assert not any(p.type.startswith("prune") for plan in plans for p in plan.recipe.passes)


def test_fallback_excludes_the_next_most_sensitive_nodes(conv_path: Path) -> None:
    plan = plan_candidates(analyze_model(conv_path), Objective(), has_calibration=True)[0]
    sensitive = ["fc/Gemm", "conv2", "conv1", "fc/Gemm"]

    first = fallback_plan(plan, sensitive, 0)
    assert first is not None and first.family == plan.family
    assert first.recipe.passes[0].nodes_to_exclude == ["fc/Gemm"]
    assert first.label == f"{plan.label} excluding 1 node"
    second = fallback_plan(first, sensitive, 1)
    assert second is not None
    assert second.recipe.passes[0].nodes_to_exclude == ["fc/Gemm", "conv2", "conv1"]
    assert second.label == f"{plan.label} excluding 3 nodes"
    assert fallback_plan(second, sensitive, 2) is None  # nothing new left to exclude
    assert plan.recipe.passes[0].nodes_to_exclude == []  # the original plan is untouched


def test_fallback_needs_a_quantizer(mlp_path: Path) -> None:
    plans = plan_candidates(analyze_model(mlp_path), Objective(), has_calibration=True)
    fp16 = next(p for p in plans if p.family == "fp16")

    assert fallback_plan(fp16, ["fc0/MatMul"], 0) is None
    dynamic = fallback_plan(plans[0], ["fc0/MatMul"], 0)
    assert dynamic is not None and dynamic.recipe.passes[0].nodes_to_exclude == ["fc0/MatMul"]
