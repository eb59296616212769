"""prune_channels: fewer channels in the weights, fewer FLOPs, outputs kept, skips explained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.compression.errors import PassError
from app.compression.graph import model_io
from app.compression.graph.analysis import param_count
from app.compression.passes.prune_channels import PruneChannelsConfig, PruneChannelsPass
from tests.builders import (
    build_cnn_residual,
    build_mlp,
    build_transformer_block,
    cosine,
    count_macs,
    run_model,
)

IMAGE = (4, 3, 32, 32)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("channels")


@pytest.fixture(scope="module")
def cnn(folder: Path) -> Path:
    return build_cnn_residual(folder / "cnn.onnx")


def _shapes(path: Path) -> dict[str, list[int]]:
    return {t.name: list(t.dims) for t in onnx.load(str(path)).graph.initializer}


def _feed(shape: tuple[int, ...], seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _edit(source: Path, target: Path, edits: dict[str, tuple[int, slice, float]]) -> Path:
    """Copy of the model with initializer[name] set to value on index range of an axis."""
    model = onnx.load(str(source))
    for tensor in model.graph.initializer:
        if tensor.name in edits:
            axis, where, value = edits[tensor.name]
            array = numpy_helper.to_array(tensor).copy()
            np.moveaxis(array, axis, 0)[where] = value
            tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    onnx.save(model, str(target))
    return target


def test_residual_cnn(cnn: Path, tmp_path: Path) -> None:
    out = tmp_path / "pruned.onnx"
    report = PruneChannelsPass().run(cnn, PruneChannelsConfig(), out)
    onnx.checker.check_model(str(out), full_check=True)
    shapes = _shapes(out)
    # stem and block2 meet at the residual Add: pruned together, to the same 12 channels.
    assert shapes["stem.weight"] == [12, 3, 3, 3]
    assert shapes["block1.weight"] == [12, 12, 3, 3]
    assert shapes["block2.weight"] == [12, 12, 3, 3]
    assert shapes["down.weight"] == [23, 12, 3, 3]
    assert shapes["down/BatchNormalization.var"] == [23]
    assert shapes["fc.weight"] == [10, 23]  # through GlobalAveragePool and Flatten
    assert count_macs(out, (1, 3, 32, 32)) < 0.6 * count_macs(cnn, (1, 3, 32, 32))
    details = report.details
    assert details["params_after"] == param_count(onnx.load(str(out)))
    assert details["params_after"] < 0.6 * details["params_before"]
    layers = {row["node"]: row for row in details["layers"]}
    assert (layers["down/Conv"]["channels_before"], layers["down/Conv"]["channels_after"]) == (
        32,
        23,
    )
    assert layers["fc"]["input_channels_after"] == 23
    assert details["skipped"] == [
        {"node": "fc", "reason": "its channels reach the graph output 'logits'"}
    ]
    feed = _feed(IMAGE)
    assert run_model(out, feed).shape == (4, 10)
    assert cosine(run_model(cnn, feed), run_model(out, feed)) > 0.8


def test_activation_criterion_keeps_outputs_closer(cnn: Path, tmp_path: Path) -> None:
    out = tmp_path / "act.onnx"
    report = PruneChannelsPass().run(cnn, PruneChannelsConfig(criterion="activation"), out)
    assert any("synthetic" in w for w in report.warnings)
    assert _shapes(out)["down.weight"] == [23, 12, 3, 3]
    feed = _feed(IMAGE)
    assert cosine(run_model(cnn, feed), run_model(out, feed)) > 0.95


def test_dead_channels_are_removed_exactly(cnn: Path, folder: Path, tmp_path: Path) -> None:
    # Channels that are zero after BN carry nothing: removing them must not change the output.
    dead = slice(0, 4)
    edits: dict[str, tuple[int, slice, float]] = {}
    for layer, count in (("stem", 16), ("block1", 16), ("block2", 16), ("down", 32)):
        where = dead if count == 16 else slice(0, 9)
        edits[f"{layer}.weight"] = (0, where, 0.0)
        edits[f"{layer}/BatchNormalization.mean"] = (0, where, 0.0)
        edits[f"{layer}/BatchNormalization.bias"] = (0, where, 0.0)
    source = _edit(cnn, folder / "dead.onnx", edits)
    out = tmp_path / "pruned.onnx"
    PruneChannelsPass().run(source, PruneChannelsConfig(criterion="l2"), out)
    assert _shapes(out)["stem.weight"] == [12, 3, 3, 3]
    feed = _feed(IMAGE)
    np.testing.assert_allclose(run_model(out, feed), run_model(source, feed), atol=1e-4)


def test_transformer_prunes_ffn_and_explains_attention(folder: Path, tmp_path: Path) -> None:
    source = build_transformer_block(folder / "transformer.onnx")
    out = tmp_path / "pruned.onnx"
    report = PruneChannelsPass().run(source, PruneChannelsConfig(), out)
    onnx.checker.check_model(str(out), full_check=True)
    shapes = _shapes(out)
    assert shapes["ffn.up.weight"] == [64, 180] and shapes["ffn.up.bias"] == [180]
    assert shapes["ffn.down.weight"] == [180, 64]
    assert shapes["attn.q.weight"] == [64, 64]
    reasons = {row["node"]: row["reason"] for row in report.details["skipped"]}
    assert "attention heads" in reasons["attn/q/mm"]
    assert "graph input 'input'" in reasons["attn/o/mm"]
    assert count_macs(out, (1, 16, 64)) < 0.85 * count_macs(source, (1, 16, 64))
    feed = _feed((4, 16, 64))
    assert cosine(run_model(source, feed), run_model(out, feed)) > 0.9


def test_mlp_hidden_units(folder: Path, tmp_path: Path) -> None:
    source = build_mlp(folder / "mlp.onnx")
    out = tmp_path / "pruned.onnx"
    report = PruneChannelsPass().run(source, PruneChannelsConfig(criterion="activation"), out)
    shapes = _shapes(out)
    assert shapes["fc0.weight"] == [256, 717] and shapes["fc1.weight"] == [717, 717]
    assert shapes["fc2.weight"] == [717, 256] and shapes["fc2.bias"] == [256]
    assert report.details["params_after"] < 0.6 * report.details["params_before"]
    feed = _feed((8, 256))
    # Random weights have no redundant units to find, so more of the output moves.
    assert cosine(run_model(source, feed), run_model(out, feed)) > 0.85


def _patterns_model(path: Path) -> Path:
    """Conv -> depthwise Conv -> Relu -> Reshape -> Gemm, and two Convs joined by a Concat."""
    rng = np.random.default_rng(0)

    def init(name: str, *shape: int) -> TensorProto:
        return numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32) * 0.3, name)

    inits = [
        init("a.w", 8, 3, 3, 3),
        init("a.b", 8),
        init("dw.w", 8, 1, 3, 3),
        numpy_helper.from_array(np.array([0, 8 * 8 * 8], np.int64), "flat_shape"),
        init("head.w", 5, 512),
        init("b.w", 4, 3, 1, 1),
        init("c.w", 4, 3, 1, 1),
        init("cat.w", 6, 8),
    ]
    conv: dict[str, Any] = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "a.w", "a.b"], ["a"], "a", **conv),
        helper.make_node("Conv", ["a", "dw.w"], ["dw"], "dw", group=8, **conv),
        helper.make_node("Relu", ["dw"], ["act"], "relu"),
        helper.make_node("Reshape", ["act", "flat_shape"], ["flat"], "flatten"),
        helper.make_node("Gemm", ["flat", "head.w"], ["y1"], "head", transB=1),
        helper.make_node("Conv", ["x", "b.w"], ["b"], "b", kernel_shape=[1, 1]),
        helper.make_node("Conv", ["x", "c.w"], ["c"], "c", kernel_shape=[1, 1]),
        helper.make_node("Concat", ["b", "c"], ["cat"], "cat", axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["pool"], "pool"),
        helper.make_node("Flatten", ["pool"], ["pooled"], "pooled"),
        helper.make_node("Gemm", ["pooled", "cat.w"], ["y2"], "cat_head", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "patterns",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 8, 8])],
        [
            helper.make_tensor_value_info("y1", TensorProto.FLOAT, [2, 5]),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, [2, 6]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_depthwise_reshape_and_concat(tmp_path: Path) -> None:
    # Channels 0-1 of "a" are dead (zero weights and bias): pruning them is exact.
    source = _edit(
        _patterns_model(tmp_path / "patterns.onnx"),
        tmp_path / "dead.onnx",
        {"a.w": (0, slice(0, 2), 0.0), "a.b": (0, slice(0, 2), 0.0)},
    )
    out = tmp_path / "pruned.onnx"
    report = PruneChannelsPass().run(source, PruneChannelsConfig(ratio=0.25), out)
    onnx.checker.check_model(str(out), full_check=True)
    shapes = _shapes(out)
    assert shapes["a.w"] == [6, 3, 3, 3] and shapes["dw.w"] == [6, 1, 3, 3]
    assert shapes["head.w"] == [5, 6 * 64]
    pruned = onnx.load(str(out))
    target = next(t for t in pruned.graph.initializer if t.name == "flat_shape")
    assert numpy_helper.to_array(target).tolist() == [0, 6 * 64]
    dw = next(n for n in pruned.graph.node if n.name == "dw")
    assert any(a.name == "group" and a.i == 6 for a in dw.attribute)
    reasons = {row["node"]: row["reason"] for row in report.details["skipped"]}
    assert "Concat 'cat'" in reasons["b"] and "Concat 'cat'" in reasons["c"]
    assert shapes["b.w"] == [4, 3, 1, 1]
    feed = _feed((2, 3, 8, 8))
    np.testing.assert_allclose(run_model(out, feed), run_model(source, feed), atol=1e-4)


def test_nothing_to_prune(folder: Path, cnn: Path, tmp_path: Path) -> None:
    single = build_mlp(folder / "single.onnx", sizes=(16, 8))
    with pytest.raises(PassError) as err:
        PruneChannelsPass().run(single, PruneChannelsConfig(), tmp_path / "out.onnx")
    assert err.value.code == "nothing_to_prune"
    assert "graph output 'logits'" in err.value.message
    with pytest.raises(PassError) as err:
        PruneChannelsPass().run(cnn, PruneChannelsConfig(op_types=["Gemm"]), tmp_path / "o.onnx")
    assert err.value.code == "nothing_to_prune" and "fc" in err.value.message
    assert not (tmp_path / "o.onnx").exists()


def test_large_models_keep_external_data(
    cnn: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    monkeypatch.setattr(model_io, "EXTERNAL_DATA_THRESHOLD", 0)  # pretend it is > 2 GiB
    out = tmp_path / "big.onnx"
    PruneChannelsPass().run(cnn, PruneChannelsConfig(criterion="activation"), out)
    assert (tmp_path / "big.onnx.data").stat().st_size > out.stat().st_size
    assert not list(tmp_path.glob(".prune-*")), "scratch folder left behind"
    onnx.checker.check_model(str(out))
    feed = _feed(IMAGE)
    assert cosine(run_model(cnn, feed), run_model(out, feed)) > 0.95
