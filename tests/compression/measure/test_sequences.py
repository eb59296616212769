"""Sequence labels (OCR, tagging): per-position accuracy, exact match, CTC decoding, agreement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from app.compression.measure import fidelity
from app.compression.measure.benchmark import MeasureOptions, benchmark_pair
from app.compression.measure.metrics import Fidelity, Host, LatencyStats, Metrics, ModelMetrics
from app.compression.measure.objective import Objective, Verdict
from app.compression.measure.sequences import decode, label_sequence, sequence_metrics
from app.compression.measure.verdict import judge

BLANK = 0


def _scores(path: list[int], classes: int = 5) -> np.ndarray:
    """One sample's output [1, positions, classes] whose argmax per position is `path`."""
    scores = np.zeros((1, len(path), classes), dtype=np.float32)
    scores[0, np.arange(len(path)), path] = 1.0
    return scores


def test_ctc_decoding_collapses_repeats_and_drops_blanks() -> None:
    assert decode(np.array([0, 3, 3, 0, 3, 2, 2, 0]), BLANK).tolist() == [3, 3, 2]
    assert decode(np.array([3, 3, 0]), None).tolist() == [3, 3, 0]
    assert label_sequence(np.array([3, 3, 2, 0, 0]), BLANK).tolist() == [3, 3, 2]
    assert label_sequence(np.array([1, 2, -1, -1]), None).tolist() == [1, 2]


def test_exact_match_changes_when_one_position_changes() -> None:
    labels = np.array([[3, 3, 2, 0], [1, 4, 0, 0]])  # padded with the blank
    right = [_scores([0, 3, 0, 3, 2, 2]), _scores([1, 1, 0, 4, 4, 0])]
    assert sequence_metrics(right, labels, BLANK) == {"exact_match": 1.0, "position_accuracy": 1.0}
    # one frame of the second sample now reads 2 instead of the blank: "1 4 2"
    one_off = [right[0], _scores([1, 1, 0, 4, 4, 2])]
    scores = sequence_metrics(one_off, labels, BLANK)
    assert scores["exact_match"] == 0.5
    assert scores["position_accuracy"] == 1.0  # both labelled positions still right
    # a dropped character shifts what follows: "3 2" against "3 3 2"
    dropped = [_scores([0, 3, 3, 3, 2, 2]), right[1]]
    scores = sequence_metrics(dropped, labels, BLANK)
    assert scores["exact_match"] == 0.5
    assert scores["position_accuracy"] == pytest.approx(3 / 5)


def test_without_a_blank_positions_compare_frame_by_frame() -> None:
    labels = np.array([[1, 2, 3, -1], [4, 4, 4, 4]])  # -1 pads
    outputs = [_scores([1, 2, 3, 0]), _scores([4, 4, 1, 4])]
    scores = sequence_metrics(outputs, labels, None)
    assert scores["exact_match"] == 0.5
    assert scores["position_accuracy"] == pytest.approx(6 / 7)


def test_task_metrics_picks_the_sequence_metric_that_fits() -> None:
    labels = np.array([[3, 2, 0], [1, 0, 0]])
    outputs = {"logits": [_scores([3, 0, 2]), _scores([1, 1, 0])]}
    with_blank, notes = fidelity.task_metrics(outputs, labels, BLANK)
    assert notes == [] and next(iter(with_blank)) == "exact_match"
    frames, _ = fidelity.task_metrics(outputs, labels)
    assert next(iter(frames)) == "position_accuracy"
    block = fidelity.accuracy_block(with_blank, with_blank, 2)
    assert block.metric == "exact_match" and block.position_accuracy is not None


def test_agreement_per_position_without_labels() -> None:
    reference = {"logits": [_scores([1, 2, 3, 4]), _scores([0, 0, 1, 1])]}
    test = {"logits": [_scores([1, 2, 3, 4]), _scores([0, 2, 1, 1])]}
    result, _ = fidelity.compare_outputs(reference, test, "dataset")
    assert result is not None and result.position_agreement == pytest.approx(7 / 8)
    assert result.top1_agreement is None and result.sequence_agreement is None
    # with a blank index: "1 2 3 4" still, but "1" became "2 1": one sequence of two differs
    decoded, _ = fidelity.compare_outputs(reference, test, "dataset", BLANK)
    assert decoded is not None and decoded.sequence_agreement == 0.5
    judgement = judge(_metrics_of(decoded), Objective(blank_index=BLANK))
    assert judgement.metric == "sequence_agreement" and judgement.verdict == Verdict.REJECTED


def _metrics_of(result: Fidelity) -> Metrics:
    latency = LatencyStats(p50=1.0, p90=1.0, p99=1.0, mean=1.0, std=0.0, cv=0.0)
    block = ModelMetrics(size_bytes=1, param_count=1, latency_ms=latency, runs=1, load_ms=1.0)
    host = Host(cpu="test", cores=1, onnxruntime="1", provider="CPUExecutionProvider")
    return Metrics(
        original=block, compressed=block, compression_ratio=1.0, speedup_ratio=1.0,
        pruning_rate=0.0, sparsity=0.0, fidelity=result, host=host,
    )  # fmt: skip


def test_embeddings_are_not_taken_for_class_scores() -> None:
    rng = np.random.default_rng(0)
    reference = {"sentence_embedding": [rng.standard_normal((1, 16)).astype(np.float32)]}
    result, _ = fidelity.compare_outputs(reference, reference, "dataset")
    assert result is not None and result.top1_agreement is None
    assert result.relative_error == 0.0


def _tagger(path: Path, weight: np.ndarray) -> Path:
    """input [1, positions, 4] -> MatMul -> scores [1, positions, 5]: one class per position."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["logits"])],
        "tagger",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 6, 4])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 6, 5])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_sequence_model_is_judged_on_its_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weight = np.zeros((4, 5), dtype=np.float32)
    weight[np.arange(4), np.arange(1, 5)] = 1.0  # feature i -> class i + 1; zeros -> blank 0
    inputs = np.zeros((20, 1, 6, 4), dtype=np.float32)
    paths = rng.integers(0, 5, size=(20, 6))  # class per frame, 0 the blank
    for sample, path in enumerate(paths):
        for frame, cls in enumerate(path):
            if cls:
                inputs[sample, 0, frame, cls - 1] = 1.0
    labels = np.full((20, 6), BLANK, dtype=np.int64)
    for sample, path in enumerate(paths):
        text = decode(path, BLANK)
        labels[sample, : text.size] = text
    dataset = tmp_path / "eval.npz"
    np.savez(dataset, input=inputs, labels=labels)
    original = _tagger(tmp_path / "tagger.onnx", weight)
    swapped = weight.copy()
    swapped[:, [3, 4]] = swapped[:, [4, 3]]  # classes 3 and 4 confused
    broken = _tagger(tmp_path / "broken.onnx", swapped)
    options = MeasureOptions(
        eval_dataset_path=dataset, blank_index=BLANK, runs=2, warmup=0, time_budget_s=5.0,
        measure_memory=False,
    )  # fmt: skip

    same = benchmark_pair(original, original, options).metrics
    assert same.accuracy is not None and same.accuracy.metric == "exact_match"
    assert same.accuracy.original == 1.0
    assert judge(same, Objective(blank_index=BLANK)).verdict == Verdict.VERIFIED

    damaged = benchmark_pair(original, broken, options).metrics
    assert damaged.accuracy is not None and damaged.accuracy.compressed < 0.5
    judgement = judge(damaged, Objective(blank_index=BLANK))
    assert judgement.verdict == Verdict.REJECTED and judgement.basis == "labels"
    assert damaged.fidelity is not None and damaged.fidelity.position_agreement is not None
