"""Messy exports: Constant weights, old opsets, If subgraphs and float16 overflow."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.compression.errors import PassError
from app.compression.graph import model_io, prepare
from app.compression.graph.analysis import count_ops, inspect_model
from app.compression.passes.convert_fp16 import ConvertFp16Config, ConvertFp16Pass
from app.compression.passes.quantize_dynamic import QuantizeDynamicConfig, QuantizeDynamicPass
from tests.builders import cosine, run_model
from tests.builders_messy import (
    build_constant_weights_net,
    build_fp16_overflow_mlp,
    build_if_subgraph_mlp,
    build_opset11_cnn,
)

IMAGE = np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32)
VECTOR = np.random.default_rng(2).standard_normal((4, 64)).astype(np.float32)


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("messy")
    return {
        "constant": build_constant_weights_net(folder / "constant.onnx"),
        "opset11": build_opset11_cnn(folder / "opset11.onnx"),
        "if": build_if_subgraph_mlp(folder / "if.onnx"),
        "overflow": build_fp16_overflow_mlp(folder / "overflow.onnx"),
    }


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def test_constant_weights_become_initializers(messy: dict[str, Path], tmp_path: Path) -> None:
    model = onnx.load(str(messy["constant"]))
    model, prep = prepare.prepare_model(model)
    assert prep.notes == ["folded 6 Constant node(s) into initializers"]
    assert "Constant" not in count_ops(model) and len(model.graph.initializer) == 6
    out = _save(model, tmp_path / "folded.onnx")
    inspect_model(out)
    assert np.array_equal(run_model(out, IMAGE), run_model(messy["constant"], IMAGE))


def test_dynamic_quantization_of_constant_weights(messy: dict[str, Path], tmp_path: Path) -> None:
    # Plain ORT refuses this model: "Expected conv.weight to be an initializer".
    out = tmp_path / "int8.onnx"
    config = QuantizeDynamicConfig(op_types=["Conv", "MatMul", "Gemm"])
    report = QuantizeDynamicPass().run(messy["constant"], config, out)
    assert report.details["prepared"] == ["folded 6 Constant node(s) into initializers"]
    ops = inspect_model(out).op_counts
    assert ops["ConvInteger"] == 1 and ops["MatMulInteger"] == 2
    assert cosine(run_model(out, IMAGE), run_model(messy["constant"], IMAGE)) > 0.999


def test_opset_upgrade_rewrites_attribute_forms(messy: dict[str, Path], tmp_path: Path) -> None:
    model, prep = prepare.prepare_model(onnx.load(str(messy["opset11"])), min_opset=13)
    assert prep.notes == ["upgraded the model from opset 11 to 13"] and prep.opset == 13
    assert prepare.default_opset(model) == 13
    squeeze = next(n for n in model.graph.node if n.op_type == "Squeeze")
    assert len(squeeze.input) == 2 and not squeeze.attribute  # axes moved to an input
    out = _save(model, tmp_path / "opset13.onnx")
    assert inspect_model(out).opset == 13
    assert np.allclose(run_model(out, IMAGE), run_model(messy["opset11"], IMAGE), atol=1e-6)


def test_failed_opset_upgrade_is_a_warning(
    messy: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(model: onnx.ModelProto, target: int) -> onnx.ModelProto:
        raise RuntimeError("no adapter for MyOp")

    monkeypatch.setattr(prepare, "upgrade_opset", refuse)
    model, prep = prepare.prepare_model(onnx.load(str(messy["opset11"])), min_opset=13)
    assert prep.opset == 11 and prepare.default_opset(model) == 11
    assert prep.warnings == ["could not upgrade opset 11 to 13: no adapter for MyOp"]


def test_weights_listed_as_inputs_are_dropped(messy: dict[str, Path]) -> None:
    model = onnx.load(str(messy["opset11"]))
    for tensor in model.graph.initializer:  # as keep_initializers_as_inputs=True exports
        model.graph.input.append(
            helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
        )
    _, prep = prepare.prepare_model(model)
    assert prep.notes == ["removed 12 initializer(s) that were also listed as graph inputs"]
    assert [i.name for i in model.graph.input] == ["image"]


def test_subgraph_weights_are_found_and_sorting_respects_outer_reads(
    messy: dict[str, Path], tmp_path: Path
) -> None:
    model = onnx.load(str(messy["if"]))
    assert sorted(prepare.subgraph_weight_nodes(model)) == ["else/MatMul", "then/MatMul"]
    nodes = list(model.graph.node)
    random.Random(0).shuffle(nodes)
    model.graph.ClearField("node")
    model.graph.node.extend(nodes)
    prepare.sort_all_graphs(model)
    order = [n.name for n in model.graph.node]
    # The If reads "h" (fc_in/Relu's output) inside its branches, not as an input.
    assert order.index("fc_in/Relu") < order.index("gate/If")
    inspect_model(_save(model, tmp_path / "sorted.onnx"))


def test_dynamic_quantization_inside_if_branches(messy: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "if_int8.onnx"
    report = QuantizeDynamicPass().run(messy["if"], QuantizeDynamicConfig(), out)
    assert report.details["subgraph_nodes_quantized"] == 2
    assert report.details["nodes_quantized"] == 4 and report.warnings == []
    assert inspect_model(out).op_counts["MatMulInteger"] == 4  # checker: sorted, valid
    assert cosine(run_model(out, VECTOR), run_model(messy["if"], VECTOR)) > 0.999


def test_ort_load_error_names_the_problem(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    graph = helper.make_graph(
        [helper.make_node("NoSuchOp", ["x"], ["y"], domain="example.ops")],
        "g",
        [x],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.ops", 1)]
    )
    problem = model_io.ort_load_error(_save(model, tmp_path / "bad.onnx"))
    assert problem is not None and "NoSuchOp" in problem


def _inputs_of(model: onnx.ModelProto, node_name: str) -> list[str]:
    return list(next(n for n in model.graph.node if n.name == node_name).input)


def test_fp16_overflow_keeps_offending_nodes_in_float32(
    messy: dict[str, Path], tmp_path: Path
) -> None:
    from onnxruntime.transformers.float16 import convert_float_to_float16

    plain = convert_float_to_float16(onnx.load(str(messy["overflow"])), keep_io_types=True)
    prepare.topological_sort(plain.graph)
    broken = run_model(_save(plain, tmp_path / "plain.onnx"), VECTOR)
    assert not np.isfinite(broken).all(), "plain float16 conversion should overflow here"

    out = tmp_path / "fp16.onnx"
    report = ConvertFp16Pass().run(messy["overflow"], ConvertFp16Config(), out)
    blocked = ["fc2/MatMul", "heads/Reshape", "norm"]
    assert report.details["node_block_list"] == blocked
    assert report.details["overflow_check"]["nodes_out_of_range"] == blocked
    assert any("kept 3 node(s) in float32" in w for w in report.warnings)
    model = onnx.load(str(out))
    weights = {t.name: t.data_type for t in model.graph.initializer}
    assert weights["fc2.weight"] == TensorProto.FLOAT  # kept with its node
    assert weights["fc1.weight"] == weights["fc3.weight"] == TensorProto.FLOAT16
    # fc2 feeds the Reshape directly: no float16 round trip in between.
    fc2_out = next(n for n in model.graph.node if n.name == "fc2/MatMul").output[0]
    assert _inputs_of(model, "heads/Reshape")[0] == fc2_out
    assert inspect_model(out).op_counts["Cast"] >= 2
    result, reference = run_model(out, VECTOR), run_model(messy["overflow"], VECTOR)
    assert np.isfinite(result).all()
    assert cosine(result, reference) > 0.9999 and np.abs(result - reference).max() < 0.02


def test_fp16_search_finds_cancellation(tmp_path: Path) -> None:
    # (x @ w + 3000) -> Reshape -> - 3000: float16 keeps ~1 unit of the 3000, losing x @ w.
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((16, 16)) * 0.35).astype("f4"), "w"),
        numpy_helper.from_array(np.array(3000, "f4"), "offset"),
        numpy_helper.from_array(np.array([-1, 4, 4], "i8"), "shape"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], "mm"),
        helper.make_node("Add", ["m", "offset"], ["shifted"], "shift"),
        helper.make_node("Reshape", ["shifted", "shape"], ["r"], "reshape"),
        helper.make_node("Sub", ["r", "offset"], ["y"], "unshift"),
    ]
    graph = helper.make_graph(
        nodes,
        "cancel",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = _save(model, tmp_path / "cancel.onnx")
    out = tmp_path / "cancel16.onnx"
    report = ConvertFp16Pass().run(path, ConvertFp16Config(), out)
    check = report.details["overflow_check"]
    assert check["nodes_out_of_range"] == []
    assert check["nodes_found_by_search"] == ["reshape", "shift", "unshift"]
    assert onnx.load(str(out)).graph.initializer[0].data_type == TensorProto.FLOAT16  # w
    x = rng.standard_normal((3, 16)).astype(np.float32)
    assert np.abs(run_model(out, x) - run_model(path, x)).max() < 0.01


def test_fp16_gives_up_rather_than_returning_garbage(
    messy: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.compression.passes.fp16_guard as guard

    monkeypatch.setattr(guard, "MAX_SEARCH_ROUNDS", 0)
    monkeypatch.setattr(guard, "_out_of_range_nodes", lambda model, ref: set())
    out = tmp_path / "never.onnx"
    with pytest.raises(PassError) as err:
        ConvertFp16Pass().run(messy["overflow"], ConvertFp16Config(), out)
    assert err.value.code == "fp16_inaccurate" and not out.exists()


def test_fp16_converts_subgraph_and_constant_weights(
    messy: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "if16.onnx"
    report = ConvertFp16Pass().run(messy["if"], ConvertFp16Config(), out)
    assert report.details["prepared"] == ["converted 4 weight(s) inside If/Loop/Scan subgraphs"]
    assert report.details["node_block_list"] == []
    inspect_model(out)
    assert cosine(run_model(out, VECTOR), run_model(messy["if"], VECTOR)) > 0.9999

    out = tmp_path / "constant16.onnx"
    report = ConvertFp16Pass().run(messy["constant"], ConvertFp16Config(), out)
    assert report.details["prepared"] == ["folded 6 Constant node(s) into initializers"]
    model = onnx.load(str(out))
    assert {t.data_type for t in model.graph.initializer} == {TensorProto.FLOAT16}
    assert cosine(run_model(out, IMAGE), run_model(messy["constant"], IMAGE)) > 0.9999


def test_dynamic_falls_back_when_subgraph_quantization_fails(
    messy: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.compression.passes.quantize_dynamic as module

    real = module._quantize

    def flaky(*args: object) -> str | None:
        if args[-1]:  # enable_subgraph
            raise RuntimeError("subgraph quantization exploded")
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_quantize", flaky)
    out = tmp_path / "if_main_only.onnx"
    report = QuantizeDynamicPass().run(messy["if"], QuantizeDynamicConfig(), out)
    assert report.details["nodes_quantized"] == 2
    assert report.details["subgraph_nodes_quantized"] == 0
    assert any("subgraph quantization exploded" in w for w in report.warnings)
    assert any("inside If/Loop/Scan subgraphs stay float" in w for w in report.warnings)
    assert cosine(run_model(out, VECTOR), run_model(messy["if"], VECTOR)) > 0.999
