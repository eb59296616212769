"""The passes on real-export shapes: LSTMs, If branches, Paddle graphs, embeddings, Transposes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from app.compression.errors import PassError
from app.compression.graph import prepare
from app.compression.graph.analysis import count_ops
from app.compression.passes import static_pre_process
from app.compression.passes.base import PassConfig, PassReport
from app.compression.passes.configs import (
    FactorizeLowRankConfig,
    OptimizeGraphConfig,
    PruneChannelsConfig,
    PruneMagnitudeConfig,
    QuantizeDynamicConfig,
    QuantizeStaticConfig,
    QuantizeWeightOnlyConfig,
)
from app.compression.passes.factorize_low_rank import FactorizeLowRankPass
from app.compression.passes.optimize_graph import OptimizeGraphPass
from app.compression.passes.prune_channels import PruneChannelsPass
from app.compression.passes.prune_magnitude import PruneMagnitudePass
from app.compression.passes.quantize_dynamic import QuantizeDynamicPass
from app.compression.passes.quantize_static import QuantizeStaticPass
from app.compression.passes.quantize_weight_only import QuantizeWeightOnlyPass
from tests.builders import cosine
from tests.builders_recurrent import silero_like_feed
from tests.compression.passes.conftest import ExportShape

FAST_STATIC = {"num_samples": 4}


def _outputs(path: Path, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def _close(a: Path, b: Path, feed: dict[str, np.ndarray], least: float) -> None:
    assert cosine(_outputs(a, feed)[0], _outputs(b, feed)[0]) > least


def _run(
    pass_cls: Any, shape: ExportShape, config: PassConfig, out: Path, source: Path | None = None
) -> PassReport:
    report: PassReport = pass_cls().run(source or shape.path, config, out, shape.context)
    return report


def test_transposed_weights_are_folded_into_initializers(
    export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    model, prep = prepare.prepare_model(onnx.load(str(export_shapes["transposed"].path)))
    assert prep.notes == [
        "folded 1 Constant node(s) into initializers",
        "folded 2 Transpose/Identity node(s) of weights",
    ]
    assert "Transpose" not in count_ops(model)
    # The untransposed originals are gone: each weight is stored once.
    assert sorted(t.name for t in model.graph.initializer) == [
        "fc1.bias",
        "fc1.weight_t",
        "fc2.weight_t",
    ]
    out = tmp_path / "folded.onnx"
    onnx.save(model, str(out))
    feed = export_shapes["transposed"].feed
    assert np.array_equal(
        _outputs(out, feed)[0], _outputs(export_shapes["transposed"].path, feed)[0]
    )


def test_dynamic_quantizes_the_crnn_lstm(
    export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    crnn = export_shapes["crnn"]
    out = tmp_path / "crnn.onnx"
    report = _run(QuantizeDynamicPass, crnn, QuantizeDynamicConfig(), out)
    ops = count_ops(onnx.load(str(out)))
    assert ops["DynamicQuantizeLSTM"] == 1 and "LSTM" not in ops
    assert ops["MatMulInteger"] == 1  # the Gemm head
    assert report.details["weight_bytes_before"] / report.details["weight_bytes_after"] > 3.3
    _close(crnn.path, out, crnn.feed, 0.999)
    # Per channel: one scale per gate row and direction, as ORT's LSTM kernel takes them.
    out = tmp_path / "crnn_pc.onnx"
    _run(QuantizeDynamicPass, crnn, QuantizeDynamicConfig(per_channel=True), out)
    model = onnx.load(str(out))
    lstm = next(n for n in model.graph.node if n.op_type == "DynamicQuantizeLSTM")
    scales = {t.name: list(t.dims) for t in model.graph.initializer}
    assert scales[lstm.input[8]] == [2, 4 * 48]
    _close(crnn.path, out, crnn.feed, 0.999)


def test_dynamic_says_gru_stays_float(
    export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    config = QuantizeDynamicConfig(op_types=["GRU", "Gemm"])
    report = _run(QuantizeDynamicPass, export_shapes["crnn"], config, tmp_path / "gru.onnx")
    assert any("['GRU']" in w and "no dynamically quantized GRU" in w for w in report.warnings)
    assert report.details["nodes_quantized"] == 1


def test_dynamic_quantizes_embedding_tables_on_request(
    export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    encoder = export_shapes["encoder"]
    plain = _run(QuantizeDynamicPass, encoder, QuantizeDynamicConfig(), tmp_path / "plain.onnx")
    out = tmp_path / "embeddings.onnx"
    config = QuantizeDynamicConfig(quantize_embeddings=True)
    report = _run(QuantizeDynamicPass, encoder, config, out)
    assert report.details["nodes_quantized"] == plain.details["nodes_quantized"] + 2
    tables = {t.name: t.data_type for t in onnx.load(str(out)).graph.initializer if "emb" in t.name}
    assert tables["emb.word_quantized"] == onnx.TensorProto.UINT8
    assert report.details["weight_bytes_after"] < plain.details["weight_bytes_after"] / 2.5
    _close(encoder.path, out, encoder.feed, 0.999)


def test_dynamic_and_static_reach_into_if_branches(
    export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    vad = export_shapes["vad"]
    rng = np.random.default_rng(3)
    feeds = [silero_like_feed(rng, batch=2, rate=rate) for rate in (16000, 8000)]
    out = tmp_path / "dynamic.onnx"
    report = _run(QuantizeDynamicPass, vad, QuantizeDynamicConfig(), out)
    assert report.details["subgraph_nodes_quantized"] == 4  # 2 LSTM + 2 MatMul
    # The Conv of each branch is named with the reason it stays float.
    assert report.details["subgraph_nodes_left_float"] == [
        {"node": "rate8k.conv", "reason": "op_types leaves Conv out"},
        {"node": "rate16k.conv", "reason": "op_types leaves Conv out"},
    ]
    for feed in feeds:  # both branches, picked by the scalar `sr`
        assert np.allclose(_outputs(out, feed)[0], _outputs(vad.path, feed)[0], atol=0.02)
    out = tmp_path / "static.onnx"
    report = _run(QuantizeStaticPass, vad, QuantizeStaticConfig(**FAST_STATIC), out)
    assert len(report.details["weight_only_nodes"]) == 6
    assert report.details["subgraph_nodes_left_float"] == []
    assert report.details["weight_bytes_after"] < report.details["weight_bytes_before"] / 2.5
    for feed in feeds:
        assert np.allclose(_outputs(out, feed)[0], _outputs(vad.path, feed)[0], atol=0.02)


def test_int4_and_pruning_reach_into_if_branches(
    export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    vad = export_shapes["vad"]
    report = _run(QuantizeWeightOnlyPass, vad, QuantizeWeightOnlyConfig(), tmp_path / "q4.onnx")
    assert report.details["subgraph_nodes_quantized"] == report.details["nodes_quantized"] == 2
    report = _run(PruneMagnitudePass, vad, PruneMagnitudeConfig(), tmp_path / "sparse.onnx")
    # The Conv weights are Constant nodes inside the branches: folded, then pruned.
    assert report.details["prepared"] == ["folded 3 Constant node(s) into initializers"]
    assert {row["tensor"] for row in report.details["tensors"]} == {
        "rate16k.conv.w",
        "rate16k.head.w",
        "rate8k.conv.w",
        "rate8k.head.w",
    }
    with pytest.raises(PassError) as err:
        _run(PruneChannelsPass, vad, PruneChannelsConfig(), tmp_path / "channels.onnx")
    assert err.value.code == "nothing_to_prune"
    assert "rate16k.conv: inside a subgraph (If/Loop/Scan): not pruned" in err.value.message


def test_static_pre_process_falls_back_on_a_paddle_graph(
    export_shapes: dict[str, ExportShape], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paddle = export_shapes["paddle"]
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    out = tmp_path / "int8.onnx"
    report = _run(QuantizeStaticPass, paddle, QuantizeStaticConfig(**FAST_STATIC), out)
    pre = report.details["pre_process"]
    assert pre["mode"] == "skip_symbolic_shape"
    assert pre["failures"] == ["full failed (Exception: Incomplete symbolic shape inference)"]
    assert any("ran in mode skip_symbolic_shape" in w for w in report.warnings)
    # The pre-processing ran: every BatchNormalization is folded into its Conv.
    ops = count_ops(onnx.load(str(out)))
    assert "BatchNormalization" not in ops and ops["QuantizeLinear"] > 5
    _close(paddle.path, out, paddle.feed, 0.999)
    # ORT's failed symbolic shape inference dumps a model into the working directory.
    assert list(workdir.iterdir()) == []


@pytest.mark.parametrize(
    ("failing", "mode"),
    [
        ({"full", "skip_symbolic_shape"}, "onnx_shape_only"),
        ({m for m, _ in static_pre_process.ATTEMPTS}, None),
    ],
)
def test_static_pre_process_says_which_mode_ran(
    failing: set[str],
    mode: str | None,
    export_shapes: dict[str, ExportShape],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_attempt = static_pre_process._attempt
    modes = {tuple(sorted(s.items())): m for m, s in static_pre_process.ATTEMPTS}

    def attempt(staged: Path, target: Path, big: bool, switches: dict[str, bool]) -> list[str]:
        if modes[tuple(sorted(switches.items()))] in failing:
            raise RuntimeError("shape inference exploded")
        return real_attempt(staged, target, big, switches)

    monkeypatch.setattr(static_pre_process, "_attempt", attempt)
    constant = export_shapes["constant"]
    out = tmp_path / "int8.onnx"
    report = _run(QuantizeStaticPass, constant, QuantizeStaticConfig(**FAST_STATIC), out)
    assert report.details["pre_process"]["mode"] == mode
    assert len(report.details["pre_process"]["failures"]) == len(failing)
    expected = "every mode" if mode is None else f"ran in mode {mode}"
    assert any(expected in w for w in report.warnings)
    _close(constant.path, out, constant.feed, 0.99)


@pytest.mark.parametrize("shape", ["paddle", "encoder"])
def test_optimize_graph_then_quantize_static(
    shape: str, export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    model = export_shapes[shape]
    optimized = tmp_path / "optimized.onnx"
    _run(OptimizeGraphPass, model, OptimizeGraphConfig(), optimized)
    contrib = {n.op_type for n in onnx.load(str(optimized)).graph.node if n.domain}
    assert contrib  # FusedConv (detector), FusedMatMul (encoder)
    out = tmp_path / "int8.onnx"
    report = _run(QuantizeStaticPass, model, QuantizeStaticConfig(**FAST_STATIC), out, optimized)
    ops = count_ops(onnx.load(str(out)))
    if shape == "paddle":
        assert report.details["prepared"][0] == "split 2 FusedConv/FusedGemm node(s) into plain ops"
        assert "FusedConv" not in ops and ops["Conv"] == 5
    else:  # LayerNormalization and FusedMatMul outputs: typed by onnxruntime for calibration
        assert report.details["pre_process"]["tensors_typed_by_onnxruntime"] > 0
    assert report.details["nodes_quantized"] > 5
    _close(model.path, out, model.feed, 0.99)


def test_weight_passes_find_constant_and_transposed_weights(
    export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    for name in ("transposed", "constant"):
        model = export_shapes[name]
        out = tmp_path / f"{name}-int4.onnx"
        report = _run(QuantizeWeightOnlyPass, model, QuantizeWeightOnlyConfig(), out)
        assert count_ops(onnx.load(str(out)))["MatMulNBits"] == 2 and not report.details["skipped"]
        _close(model.path, out, model.feed, 0.95)  # 4 bits on small random layers
        out = tmp_path / f"{name}-channels.onnx"
        report = _run(PruneChannelsPass, model, PruneChannelsConfig(), out)
        assert report.details["params_after"] < 0.8 * report.details["params_before"]
        assert any("folded" in note for note in report.details["prepared"])
        assert _outputs(out, model.feed)[0].shape == _outputs(model.path, model.feed)[0].shape
    transposed = export_shapes["transposed"]
    out = tmp_path / "factorized.onnx"
    report = _run(FactorizeLowRankPass, transposed, FactorizeLowRankConfig(rank_ratio=0.25), out)
    assert [layer["node"] for layer in report.details["layers"]] == ["fc1/MatMul", "fc2/MatMul"]


def test_float_weights_inside_branches_are_found(
    export_shapes: dict[str, ExportShape],
) -> None:
    # Constant-node weights (the Convs) count as much as initializers (the LSTMs, the heads).
    model = onnx.load(str(export_shapes["vad"].path))
    assert sorted(n.name for n in prepare.subgraph_float_weights(model)) == [
        "rate16k.conv",
        "rate16k.head",
        "rate16k.lstm",
        "rate8k.conv",
        "rate8k.head",
        "rate8k.lstm",
    ]


def test_int4_names_where_a_conv_model_keeps_its_weights(
    export_shapes: dict[str, ExportShape], tmp_path: Path
) -> None:
    with pytest.raises(PassError) as err:
        _run(
            QuantizeWeightOnlyPass,
            export_shapes["paddle"],
            QuantizeWeightOnlyConfig(),
            tmp_path / "q4.onnx",
        )
    assert err.value.code == "nothing_to_quantize"
    assert "its weights sit in Convx5" in err.value.message
    assert "int8-static" in err.value.message
