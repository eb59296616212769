"""analyze_model: what each pass would touch, symbolic dims, subgraphs, weights by consumer."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from app.compression.graph.model_analysis import ModelAnalysis, PassCoverage, analyze_model
from tests.builders import build_transformer_block
from tests.builders_exports import build_embedding_encoder, build_transposed_weight_mlp
from tests.builders_messy import build_constant_weights_net, build_if_subgraph_mlp
from tests.builders_recurrent import build_crnn_lstm, build_silero_like_vad


def _coverage(analysis: ModelAnalysis, pass_type: str) -> PassCoverage:
    return next(c for c in analysis.passes if c.pass_type == pass_type)


def test_mlp_is_matmul_heavy_and_every_quantizer_takes_its_matmuls(mlp_path: Path) -> None:
    analysis = analyze_model(mlp_path)

    assert analysis.opset == 17 and analysis.op_counts == {"Add": 3, "MatMul": 3, "Relu": 2}
    assert analysis.params_by_op == {"MatMul": 256 * 1024 + 1024 * 1024 + 1024 * 256, "Add": 2304}
    assert [(d.input, d.axis, d.name) for d in analysis.symbolic_dims] == [("input", 0, "batch")]
    assert analysis.subgraphs == [] and not analysis.has_external_data
    flags = analysis.flags
    assert flags.matmul_heavy and flags.large_matmul_params
    assert not (flags.conv_heavy or flags.has_recurrent or flags.has_embeddings)
    dynamic = _coverage(analysis, "quantize_dynamic")
    assert dynamic.touches == {"MatMul": 3} and dynamic.leaves == {}
    assert dynamic.summary == "quantize_dynamic: 3 MatMul"
    assert _coverage(analysis, "quantize_weight_only").touches == {"MatMul": 3}
    assert _coverage(analysis, "convert_fp16").touches == {"MatMul": 3, "Add": 3}


def test_cnn_is_conv_heavy_and_dynamic_leaves_its_convs(conv_path: Path) -> None:
    analysis = analyze_model(conv_path)

    assert analysis.flags.conv_heavy and not analysis.flags.matmul_heavy
    dynamic = _coverage(analysis, "quantize_dynamic")
    assert dynamic.touches == {"Gemm": 1} and dynamic.leaves == {"Conv": 2}
    assert dynamic.summary == "quantize_dynamic: 1 Gemm; leaves 2 Conv"
    assert _coverage(analysis, "quantize_static").touches == {"Conv": 2, "Gemm": 1}
    assert _coverage(analysis, "quantize_weight_only").leaves == {"Conv": 2}
    assert _coverage(analysis, "prune_channels").touches == {"Conv": 2, "Gemm": 1}


def test_crnn_lstm_goes_to_dynamic_with_its_lstm_and_open_dims(tmp_path: Path) -> None:
    analysis = analyze_model(build_crnn_lstm(tmp_path / "crnn.onnx"))

    assert analysis.flags.has_recurrent and not analysis.flags.conv_heavy
    assert max(analysis.params_by_op, key=analysis.params_by_op.__getitem__) == "LSTM"
    # The exporter's -1 batch is open but unnamed; the width is named.
    assert [(d.axis, d.name) for d in analysis.symbolic_dims] == [(0, "?"), (3, "width")]
    dynamic = _coverage(analysis, "quantize_dynamic")
    assert dynamic.touches == {"LSTM": 1, "Gemm": 1} and dynamic.leaves == {"Conv": 2}
    assert "1 LSTM" in dynamic.summary and "leaves 2 Conv" in dynamic.summary
    assert _coverage(analysis, "quantize_weight_only").leaves == {"Conv": 2, "LSTM": 1}
    assert _coverage(analysis, "prune_magnitude").leaves == {"LSTM": 1}


def test_if_bodies_are_listed_with_their_ops_and_counted_in_coverage(tmp_path: Path) -> None:
    analysis = analyze_model(build_if_subgraph_mlp(tmp_path / "if.onnx"))

    bodies = {(s.node, s.attribute): s for s in analysis.subgraphs}
    assert set(bodies) == {("gate/If", "then_branch"), ("gate/If", "else_branch")}
    assert all(s.op_type == "If" and s.depth == 1 for s in bodies.values())
    assert bodies["gate/If", "then_branch"].op_counts == {"Add": 1, "MatMul": 1}
    assert analysis.op_counts["MatMul"] == 4  # two outside, one per branch
    assert _coverage(analysis, "quantize_dynamic").touches == {"MatMul": 4}


def test_constant_node_and_transposed_weights_count_for_their_consumer(tmp_path: Path) -> None:
    constants = analyze_model(build_constant_weights_net(tmp_path / "const.onnx"))
    assert {"Conv", "MatMul", "Gemm"} <= set(constants.params_by_op)
    assert "(unconsumed)" not in constants.params_by_op
    assert _coverage(constants, "quantize_static").touches == {"Conv": 1, "MatMul": 1, "Gemm": 1}

    transposed = analyze_model(build_transposed_weight_mlp(tmp_path / "t.onnx"))
    assert transposed.op_counts.get("Transpose")
    assert set(transposed.params_by_op) == {"MatMul", "Add"}
    assert _coverage(transposed, "quantize_dynamic").touches == {"MatMul": 2}


def test_encoder_embeddings_and_attention(tmp_path: Path) -> None:
    analysis = analyze_model(build_embedding_encoder(tmp_path / "enc.onnx"))

    assert analysis.flags.has_embeddings and analysis.flags.has_attention
    dynamic = _coverage(analysis, "quantize_dynamic")
    # Attention-score MatMuls have no constant weight: they stay float, as do the tables.
    assert dynamic.leaves == {"Gather": 2, "MatMul": 2}
    assert "quantize_embeddings would also take 2 Gather" in dynamic.summary
    assert [d.name for d in analysis.symbolic_dims] == ["batch", "sequence"]


def test_transformer_block_is_matmul_heavy_with_attention(tmp_path: Path) -> None:
    analysis = analyze_model(build_transformer_block(tmp_path / "block.onnx"))

    assert analysis.flags.matmul_heavy and analysis.flags.has_attention
    assert _coverage(analysis, "quantize_static").touches["MatMul"] == 8


def test_lstm_inside_if_bodies(tmp_path: Path) -> None:
    analysis = analyze_model(build_silero_like_vad(tmp_path / "vad.onnx"))

    assert analysis.flags.has_recurrent
    assert {s.attribute for s in analysis.subgraphs} == {"then_branch", "else_branch"}
    assert all(s.op_counts["LSTM"] == 1 for s in analysis.subgraphs)
    assert _coverage(analysis, "quantize_dynamic").touches["LSTM"] == 2


def test_calibration_memory_is_samples_times_activations_plus_weights(mlp_path: Path) -> None:
    memory = analyze_model(mlp_path).calibration_memory

    assert memory is not None and memory.complete and memory.samples == 64
    # Batch 1: two hidden layers of 1024 floats (MatMul, Add, Relu) and 256 out (MatMul, Add).
    assert memory.activation_bytes_per_sample == 4 * (2 * 3 * 1024 + 2 * 256)
    assert memory.weight_bytes == 4 * (256 * 1024 + 1024 * 1024 + 1024 * 256 + 2304)
    assert memory.estimate_bytes == 64 * memory.activation_bytes_per_sample + memory.weight_bytes


def test_external_data_is_reported_without_being_read(mlp_path: Path, tmp_path: Path) -> None:
    model = onnx.load(str(mlp_path))
    target = tmp_path / "big.onnx"
    onnx.save_model(model, str(target), save_as_external_data=True, location="big.data")

    analysis = analyze_model(target)

    assert analysis.has_external_data
    assert analysis.params_by_op == analyze_model(mlp_path).params_by_op


@pytest.mark.parametrize("pass_type", ["quantize_dynamic", "quantize_static", "convert_fp16"])
def test_round_trips_through_json(mlp_path: Path, pass_type: str) -> None:
    analysis = analyze_model(mlp_path)
    again = ModelAnalysis.model_validate_json(analysis.model_dump_json())
    assert _coverage(again, pass_type) == _coverage(analysis, pass_type)
