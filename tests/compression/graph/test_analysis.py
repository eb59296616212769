"""inspect_model: facts about good models, InvalidModelError for everything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.compression.graph.analysis import InvalidModelError, inspect_model, model_size_bytes


def test_mlp_facts(mlp_path: Path) -> None:
    info = inspect_model(mlp_path)
    assert (info.ir_version, info.opset, info.producer) == (8, 17, "modelpress-tests")
    assert [(i.name, i.dtype, i.shape) for i in info.inputs] == [
        ("input", "float32", ["batch", 256])
    ]
    assert [(o.name, o.dtype, o.shape) for o in info.outputs] == [
        ("logits", "float32", ["batch", 256])
    ]
    assert info.op_counts == {"Add": 3, "MatMul": 3, "Relu": 2}
    assert info.param_count == 256 * 1024 + 1024 * 1024 + 1024 * 256 + 1024 + 1024 + 256
    assert not info.has_external_data
    assert 4e6 < mlp_path.stat().st_size < 8e6


def test_conv_facts(conv_path: Path) -> None:
    info = inspect_model(conv_path)
    assert info.inputs[0].shape == ["batch", 3, 32, 32]
    assert info.op_counts["Conv"] == 2 and info.op_counts["Gemm"] == 1


def test_subgraphs_constants_and_unknown_dims(tmp_path: Path) -> None:
    def branch(name: str, value: float) -> onnx.GraphProto:
        const = helper.make_node(
            "Constant", [], [f"{name}_c"], value=numpy_helper.from_array(np.full(6, value, "f4"))
        )
        add = helper.make_node("Add", ["x", f"{name}_c"], [f"{name}_y"])
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [6])
        return helper.make_graph([const, add], name, [], [out])

    node = helper.make_node(
        "If", ["cond"], ["y"], then_branch=branch("then", 1.0), else_branch=branch("else", 2.0)
    )
    graph = helper.make_graph(
        [node],
        "g",
        [
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [None]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6])],
    )
    path = tmp_path / "if.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    info = inspect_model(path)
    assert info.op_counts == {"Add": 2, "Constant": 2, "If": 1}
    assert info.param_count == 12
    assert info.inputs[0].dtype == "bool" and info.inputs[0].shape == []
    assert info.inputs[1].shape == ["?"]


def test_external_data_is_detected_and_sized(mlp_path: Path, tmp_path: Path) -> None:
    model = onnx.load(str(mlp_path))
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, location="ext.data")
    info = inspect_model(path)
    assert info.has_external_data
    assert info.param_count == inspect_model(mlp_path).param_count
    assert path.stat().st_size < 10_000
    assert model_size_bytes(path) == path.stat().st_size + (tmp_path / "ext.data").stat().st_size


def _bad_model_without_check() -> bytes:
    node = helper.make_node("NoSuchOp", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("random", lambda m: np.random.default_rng(0).bytes(4096)),
        ("text", lambda m: b"name,score\nalice,3\nbob,4\n" * 20),
        ("truncated", lambda m: m.read_bytes()[: m.stat().st_size // 2]),
        ("empty", lambda m: b""),
        (
            "tensor",
            lambda m: numpy_helper.from_array(np.ones((3, 4), "f4"), "t").SerializeToString(),
        ),
        ("ir_version_only", lambda m: b"\x08\x07"),
        (
            "no_nodes",
            lambda m: helper.make_model(helper.make_graph([], "g", [], [])).SerializeToString(),
        ),
        ("checker_fails", lambda m: _bad_model_without_check()),
    ],
)
def test_rejects_non_models(name: str, payload, conv_path: Path, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.onnx"
    path.write_bytes(payload(conv_path))
    with pytest.raises(InvalidModelError) as err:
        inspect_model(path)
    assert str(err.value)
