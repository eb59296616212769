"""Accuracy on real labelled data (scikit-learn's digits), and a broken weight the metrics catch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic

from app.compression.measure.benchmark import MeasureOptions, benchmark_pair
from app.compression.measure.quant_error import node_sensitivity, weight_error_report
from tests.builders_digits import build_digits_dataset, build_digits_model, train_digits_mlp

FAST = {"runs": 3, "warmup": 1, "threads": 1, "time_budget_s": 2.0, "measure_memory": False}


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("digits")
    original = build_digits_model(folder / "digits.onnx")
    int8 = folder / "digits-int8.onnx"
    quantize_dynamic(original, int8, weight_type=QuantType.QInt8)
    return {"original": original, "int8": int8, "eval": build_digits_dataset(folder / "eval.npz")}


def _accuracy_by_hand(model: Path, k: int) -> float:
    """Top-k with onnxruntime, one sample per run as the engine feeds them.

    One at a time matters: dynamic quantization picks its activation scale per run, so a
    batch of 450 would give (slightly) different logits than 450 single runs.
    """
    trained = train_digits_mlp()
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    hits = 0
    for x, label in zip(trained.test_inputs, trained.test_labels, strict=True):
        (logits,) = session.run(None, {"input": x[None, :]})
        top = np.argsort(-logits[0], kind="stable")[:k]
        hits += int(label in top)
    return hits / len(trained.test_labels)


def test_reported_accuracy_is_what_onnxruntime_gives(digits: dict[str, Path]) -> None:
    original_path, int8_path = digits["original"], digits["int8"]
    measured = benchmark_pair(
        original_path, int8_path, MeasureOptions(eval_dataset_path=digits["eval"], **FAST)
    )
    metrics = measured.metrics.model_dump(mode="json")
    accuracy = metrics["accuracy"]
    original, compressed = _accuracy_by_hand(original_path, 1), _accuracy_by_hand(int8_path, 1)
    assert accuracy["metric"] == "top1" and accuracy["samples"] == 450
    assert accuracy["original"] == original and accuracy["compressed"] == compressed
    assert accuracy["delta"] == pytest.approx(compressed - original)
    assert accuracy["top5"]["original"] == _accuracy_by_hand(original_path, 5)
    assert accuracy["top5"]["compressed"] == _accuracy_by_hand(int8_path, 5)
    # a trained classifier, and int8 costs it at most a point or two
    assert original > 0.93 and accuracy["delta"] > -0.02
    fidelity = metrics["fidelity"]
    assert fidelity["inputs"] == "dataset" and fidelity["samples"] == 450
    assert fidelity["cosine_similarity"] > 0.999 and fidelity["top1_agreement"] > 0.97
    assert metrics["compression_ratio"] > 2 and metrics["quantization_error"]["tensors"] == 2
    assert {row.name for row in measured.weights} == {"fc0.weight", "fc1.weight"}


def test_a_broken_weight_is_caught(digits: dict[str, Path], tmp_path: Path) -> None:
    # the "compressed" model: the output layer's weight replaced by noise, then quantized
    broken_float = build_digits_model(tmp_path / "broken.onnx", corrupt_layer=1)
    broken = tmp_path / "broken-int8.onnx"
    quantize_dynamic(broken_float, broken, weight_type=QuantType.QInt8)
    measured = benchmark_pair(
        digits["original"], broken, MeasureOptions(eval_dataset_path=digits["eval"], **FAST)
    )
    metrics = measured.metrics.model_dump(mode="json")
    assert metrics["fidelity"]["cosine_similarity"] < 0.5
    assert metrics["fidelity"]["top1_agreement"] < 0.5
    assert metrics["accuracy"]["delta"] < -0.5
    assert any("diverge" in w for w in metrics["warnings"])
    assert any("accuracy fell" in w for w in metrics["warnings"])
    # the report points at the layer: its weight and its node come first
    assert weight_error_report(digits["original"], broken).tensors[0].name == "fc1.weight"
    assert measured.weights[0].name == "fc1.weight"  # the rows a job's report gets
    trained = train_digits_mlp()
    samples = [{"input": x[None, :]} for x in trained.test_inputs[:32]]
    rows = node_sensitivity(digits["original"], broken, samples)
    first, last = rows[0].model_dump(), rows[-1].model_dump()
    assert first["tensor"] == "fc1.mm" and first["relative_error"] > 0.5
    assert last["tensor"] == "fc0.mm" and last["relative_error"] < 0.05
