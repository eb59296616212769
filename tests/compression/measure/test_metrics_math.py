"""Each statistic of the metrics block against values worked out by hand."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.compression.measure.metrics_math import (
    ErrorAccumulator,
    cosine_similarity,
    mae,
    mse,
    pruning_stats,
    relative_error,
    sqnr_db,
    top1_agreement,
    topk_accuracy,
)


def test_sqnr_db() -> None:
    # signal 3^2 + 4^2 = 25, noise (4 - 3)^2 = 1: 10 log10(25)
    assert sqnr_db([3.0, 4.0], [3.0, 3.0]) == pytest.approx(10 * math.log10(25))
    assert sqnr_db([1.0, 2.0], [1.0, 2.0]) == math.inf
    assert sqnr_db([0.0, 0.0], [1.0, 0.0]) == -math.inf
    with pytest.raises(ValueError):
        sqnr_db([1.0], [1.0, 2.0])


def test_cosine_similarity_and_relative_error() -> None:
    assert cosine_similarity([1, 0], [0, 1]) == 0.0
    assert cosine_similarity([1, 2, 2], [2, 4, 4]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [1, 1]) == pytest.approx(1 / math.sqrt(2))
    assert cosine_similarity([1, 0], [-1, 0]) == pytest.approx(-1.0)
    assert cosine_similarity([0, 0], [0, 0]) == 1.0
    assert cosine_similarity([0, 0], [1, 0]) == 0.0
    # ||(0, 1)|| / ||(3, 4)|| = 1 / 5
    assert relative_error([3, 4], [3, 3]) == pytest.approx(0.2)
    assert relative_error([0, 0], [0, 0]) == 0.0


def test_top1_agreement() -> None:
    reference = [[1, 2], [3, 0], [0, 5]]  # argmax 1, 0, 1
    test = [[2, 1], [4, 1], [1, 6]]  # argmax 0, 0, 1
    assert top1_agreement(reference, test) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2-D"):
        top1_agreement([1, 2], [1, 2])


def test_topk_accuracy_with_a_tie() -> None:
    scores = [[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]]
    labels = [2, 0, 1]
    # top-1: 1, 0, 2 -> only row 1 is right
    assert topk_accuracy(scores, labels, 1) == pytest.approx(1 / 3)
    # top-2: {1, 2}, {0, 1}, {2, 0}: the 0.3 tie in row 2 goes to the lower class id, 0
    assert topk_accuracy(scores, labels, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(scores, labels, 3) == 1.0
    with pytest.raises(ValueError, match="k must be"):
        topk_accuracy(scores, labels, 4)
    with pytest.raises(ValueError, match="labels"):
        topk_accuracy(scores, [1, 2], 1)


def test_mse_and_mae() -> None:
    # differences 0, 1, 2
    assert mse([1, 2, 3], [1, 1, 1]) == pytest.approx(5 / 3)
    assert mae([1, 2, 3], [1, 1, 1]) == pytest.approx(1.0)


def test_error_accumulator_streams_like_one_batch() -> None:
    acc = ErrorAccumulator()
    acc.add([3.0, 4.0], [3.0, 3.0])
    acc.add([0.0], [1.0])
    # all together: ref (3, 4, 0), test (3, 3, 1), differences 0, 1, 1
    result = acc.result().model_dump()
    assert result["max_abs_error"] == 1.0
    assert result["mean_abs_error"] == pytest.approx(2 / 3)
    assert result["sqnr_db"] == pytest.approx(10 * math.log10(25 / 2))
    assert result["cosine_similarity"] == pytest.approx(21 / (5 * math.sqrt(19)))
    assert result["relative_error"] == pytest.approx(math.sqrt(2) / 5)


def test_error_accumulator_identical_and_nonfinite() -> None:
    acc = ErrorAccumulator()
    acc.add([1.0, 2.0], [1.0, 2.0])
    # identical: SQNR would be infinite, which is no number: the key is left out
    assert acc.result().model_dump() == {
        "max_abs_error": 0.0,
        "mean_abs_error": 0.0,
        "cosine_similarity": 1.0,
        "relative_error": 0.0,
    }
    acc.add([np.inf, 5.0], [1.0, 5.0])  # one side finite: a mismatch, left out of the stats
    acc.add([np.inf], [np.inf])  # both infinite: agreement, not counted
    assert acc.nonfinite_mismatches == 1
    assert acc.count == 3


def _save_matmul(path: Path, weight: np.ndarray, bias: np.ndarray | None = None) -> Path:
    """x [1, in] @ weight (+ bias): enough graph for pruning_stats to read weights from."""
    inits = [numpy_helper.from_array(weight.astype(np.float32), "w")]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y" if bias is None else "mm"])]
    if bias is not None:
        inits.append(numpy_helper.from_array(bias.astype(np.float32), "b"))
        nodes.append(helper.make_node("Add", ["mm", "b"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, weight.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_pruning_stats_zeroed_and_removed(tmp_path: Path) -> None:
    # 6 weights, one of them (a bias) already zero in the original
    original = _save_matmul(tmp_path / "a.onnx", np.array([[1, 2], [3, 4]]), np.array([0, 1]))
    zeroed = _save_matmul(tmp_path / "b.onnx", np.array([[0, 2], [0, 4]]), np.array([0, 1]))
    # 2 of 6 weights pruned; 3 of 6 weights are zero afterwards (the bias zero was always there)
    assert pruning_stats(original, zeroed) == pytest.approx(
        {"pruning_rate": 2 / 6, "sparsity": 0.5}
    )
    # a pruned output channel: 3 of 6 weights removed, none of the 3 left is zero
    shrunk = _save_matmul(tmp_path / "c.onnx", np.array([[2], [4]]), np.array([1]))
    assert pruning_stats(original, shrunk) == pytest.approx({"pruning_rate": 0.5, "sparsity": 0.0})
    assert pruning_stats(original, original) == pytest.approx(
        {"pruning_rate": 0.0, "sparsity": 1 / 6}
    )


def test_pruning_stats_does_not_count_rounding_to_zero(tmp_path: Path) -> None:
    original = _save_matmul(tmp_path / "a.onnx", np.array([[1.0, 0.01], [-2.0, 0.5]]))
    # int8 with step 0.02: 0.01 rounds to 0 (|w| <= step / 2: rounding); 0.5 -> 0 was pruned
    q = numpy_helper.from_array(np.array([[50, 0], [-100, 0]], np.int8), "w_quantized")
    scale = numpy_helper.from_array(np.array(0.02, np.float32), "w_scale")
    zp = numpy_helper.from_array(np.array(0, np.int8), "w_zero_point")
    graph = helper.make_graph(
        [
            helper.make_node("DequantizeLinear", ["w_quantized", "w_scale", "w_zero_point"], ["w"]),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [q, scale, zp],
    )
    compressed = tmp_path / "q.onnx"
    onnx.save(helper.make_model(graph), str(compressed))
    # 1 of 4 pruned; 2 of 4 zero; the scale and zero point are not weights
    assert pruning_stats(original, compressed) == pytest.approx(
        {"pruning_rate": 0.25, "sparsity": 0.5}
    )
