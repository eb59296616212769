"""optimize_graph: folding and fusions at both levels, portability, no-op and failure reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from pydantic import ValidationError

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.graph.analysis import inspect_model
from app.compression.passes.optimize_graph import OptimizeGraphConfig, OptimizeGraphPass
from tests.builders import build_mlp, build_transformer_block, cosine, run_model
from tests.builders_messy import build_constant_weights_net, build_opset11_cnn

IMAGE16 = np.random.default_rng(2).standard_normal((4, 3, 16, 16)).astype(np.float32)
VECTOR = np.random.default_rng(3).standard_normal((4, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("optimize")
    paths = {
        "mlp": build_mlp(folder / "mlp.onnx", sizes=(64, 128, 32)),
        "opset11": build_opset11_cnn(folder / "opset11.onnx"),
        "constant": build_constant_weights_net(folder / "constant.onnx"),
        "transformer": build_transformer_block(folder / "transformer.onnx"),
    }
    return paths


def _close(a: Path, b: Path, feed: np.ndarray) -> float:
    ref, new = run_model(a, feed), run_model(b, feed)
    assert cosine(ref, new) > 0.99999
    return float(np.abs(ref - new).max())


def test_basic_folds_batchnorm_and_stays_plain_onnx(
    models: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "cnn_basic.onnx"
    config = OptimizeGraphConfig(level="basic")
    report = OptimizeGraphPass().run(models["opset11"], config, out)
    ops = inspect_model(out).op_counts
    assert "BatchNormalization" not in ops and ops["Conv"] == 2
    assert report.details["nodes_before"] == 9 and report.details["nodes_after"] == 7
    assert report.details["op_counts_before"]["BatchNormalization"] == 2
    assert report.details["contrib_ops"] == {} and report.warnings == []
    assert {o.domain for o in onnx.load(str(out)).opset_import} <= {"", "ai.onnx"}
    assert _close(models["opset11"], out, IMAGE16) < 1e-4


def test_basic_fuses_matmul_add_into_gemm(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "mlp_basic.onnx"
    report = OptimizeGraphPass().run(models["mlp"], OptimizeGraphConfig(level="basic"), out)
    assert report.details["op_counts_after"] == {"Gemm": 2, "Relu": 1}
    assert report.summary == "Optimized at level basic: 5 -> 3 node(s)."
    assert _close(models["mlp"], out, VECTOR) < 1e-4


def test_extended_uses_cpu_contrib_ops(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cnn_extended.onnx"
    report = OptimizeGraphPass().run(models["opset11"], OptimizeGraphConfig(), out)
    assert report.details["level"] == "extended"
    assert report.details["contrib_ops"] == {"com.microsoft::FusedConv": 2}  # Conv+Relu
    assert report.details["nodes_after"] == 5
    assert any("contrib ops" in w for w in report.warnings)
    inspect_model(out)  # the checker accepts the contrib domain
    assert not any("nchwc" in o.domain for o in onnx.load(str(out)).opset_import)
    assert _close(models["opset11"], out, IMAGE16) < 1e-4


def test_extended_transformer_fusions(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "transformer.onnx"
    report = OptimizeGraphPass().run(models["transformer"], OptimizeGraphConfig(), out)
    assert report.details["nodes_after"] < report.details["nodes_before"]
    assert "Erf" not in report.details["op_counts_after"]  # GELU fused
    tokens = np.random.default_rng(4).standard_normal((2, 16, 64)).astype(np.float32)
    assert _close(models["transformer"], out, tokens) < 1e-3


def test_constant_nodes_are_folded(models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "constant.onnx"
    report = OptimizeGraphPass().run(models["constant"], OptimizeGraphConfig(level="basic"), out)
    assert report.details["op_counts_before"]["Constant"] == 6
    assert "Constant" not in report.details["op_counts_after"]
    assert _close(models["constant"], out, IMAGE16) < 1e-4


def test_weights_as_inputs_are_folded_too(models: dict[str, Path], tmp_path: Path) -> None:
    model = onnx.load(str(models["opset11"]))
    for tensor in model.graph.initializer:  # keep_initializers_as_inputs=True style export
        model.graph.input.append(
            helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
        )
    source = tmp_path / "inputs.onnx"
    onnx.save(model, str(source))
    out = tmp_path / "inputs_opt.onnx"
    report = OptimizeGraphPass().run(source, OptimizeGraphConfig(level="basic"), out)
    assert report.details["prepared"] == [
        "removed 12 initializer(s) that were also listed as graph inputs"
    ]
    assert "BatchNormalization" not in report.details["op_counts_after"]
    assert [i.name for i in inspect_model(out).inputs] == ["image"]


def test_second_run_is_a_reported_no_op(models: dict[str, Path], tmp_path: Path) -> None:
    once, twice = tmp_path / "once.onnx", tmp_path / "twice.onnx"
    OptimizeGraphPass().run(models["mlp"], OptimizeGraphConfig(level="basic"), once)
    report = OptimizeGraphPass().run(once, OptimizeGraphConfig(level="basic"), twice)
    assert report.summary.startswith("No change at level basic")
    assert report.warnings == ["no node was folded, removed or fused"]


def test_unloadable_output_is_never_returned(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_io, "ort_load_error", lambda path: "SSA violation")
    out = tmp_path / "broken.onnx"
    with pytest.raises(PassError) as err:
        OptimizeGraphPass().run(models["mlp"], OptimizeGraphConfig(), out)
    assert err.value.code == "invalid_output" and "SSA violation" in err.value.message
    assert not out.exists()


def test_unloadable_input_fails_clearly(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", 1, [2])
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="example.ops")],
        "g",
        [x],
        [helper.make_tensor_value_info("y", 1, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.ops", 1)]
    )
    source = tmp_path / "bad.onnx"
    onnx.save(model, str(source))
    with pytest.raises(PassError) as err:
        OptimizeGraphPass().run(source, OptimizeGraphConfig(), tmp_path / "out.onnx")
    assert err.value.code == "invalid_model"


def test_config_validation() -> None:
    assert OptimizeGraphConfig().level == "extended"
    for bad in ({"level": "all"}, {"level": "layout"}, {"level": 2}):
        with pytest.raises(ValidationError):
            OptimizeGraphConfig.model_validate(bad)


def test_large_models_keep_external_data(
    models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 0)  # pretend it is near 2 GiB
    out = tmp_path / "big.onnx"
    OptimizeGraphPass().run(models["mlp"], OptimizeGraphConfig(level="basic"), out)
    assert inspect_model(out).has_external_data
    assert (tmp_path / "big.onnx.data").stat().st_size > out.stat().st_size
    assert _close(models["mlp"], out, VECTOR) < 1e-4
