"""After each pass the sandbox compares its output with its input on the calibration data: a
pass that breaks the model says so, naming the metric, its value and the worst nodes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.compression.passes.base import PassConfig, PassContext
from app.compression.passes.configs import (
    ClusterWeightsConfig,
    PruneMagnitudeConfig,
    QuantizeDynamicConfig,
)
from app.pipeline.sandbox_handlers import handle
from app.pipeline.sandbox_protocol import PassRequest, PassResult
from tests.builders import build_mlp
from tests.builders_digits import build_digits_dataset, build_digits_model


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("digits")
    return build_digits_model(folder / "digits.onnx"), build_digits_dataset(folder / "cal.npz")


def _run(source: Path, config: PassConfig, context: PassContext, tmp_path: Path) -> PassResult:
    request = PassRequest(
        config=config, input=source, output=tmp_path / "out.onnx", context=context,
        check_samples=16,
    )  # fmt: skip
    result = handle(request.model_dump_json().encode())
    assert isinstance(result, PassResult), result
    return result


def _collapse_warnings(result: PassResult) -> list[str]:
    return [w for w in result.report.warnings if "broke the model's outputs" in w]


def test_pruning_95_percent_of_a_trained_classifier_is_called_out(
    digits: tuple[Path, Path], tmp_path: Path
) -> None:
    model, calibration = digits

    result = _run(
        model, PruneMagnitudeConfig(sparsity=0.95), PassContext(calibration_path=calibration),
        tmp_path,
    )  # fmt: skip

    [warning] = _collapse_warnings(result)
    assert warning.startswith("prune_magnitude broke the model's outputs on the calibration data")
    top1 = re.search(r"top-1 agreement (\d\.\d+)", warning)
    assert top1 is not None and float(top1.group(1)) < 0.5
    assert "cosine similarity" in warning
    # The three worst nodes, by name: the pruned layers of the input model.
    nodes = re.findall(r"(fc\d/\w+) \((MatMul|Add), relative error", warning)
    assert len(nodes) == 3 and ("fc0/MatMul", "MatMul") in nodes
    check: dict[str, Any] = result.report.details["output_check"]
    assert check["collapsed"] is True and check["synthetic_inputs"] is False
    assert len(check["worst_nodes"]) == 3


def test_two_clusters_on_a_random_mlp_are_called_out_on_synthetic_inputs(tmp_path: Path) -> None:
    model = build_mlp(tmp_path / "mlp.onnx", sizes=(64, 128, 128, 16))

    result = _run(model, ClusterWeightsConfig(clusters=2), PassContext(), tmp_path)

    [warning] = _collapse_warnings(result)
    assert "on synthetic inputs" in warning and "cosine similarity 0." in warning
    assert "top-1" not in warning  # drawn inputs say little about classes
    assert re.search(r"worst nodes: fc\d/MatMul \(MatMul", warning)


def test_int8_dynamic_on_an_mlp_keeps_its_outputs_and_says_nothing(tmp_path: Path) -> None:
    model = build_mlp(tmp_path / "mlp.onnx", sizes=(64, 128, 128, 16))

    result = _run(model, QuantizeDynamicConfig(), PassContext(), tmp_path)

    assert _collapse_warnings(result) == []
    check = result.report.details["output_check"]
    assert check["collapsed"] is False and check["cosine_similarity"] > 0.99
    assert check["worst_nodes"] == []


def test_the_check_is_off_without_samples(digits: tuple[Path, Path], tmp_path: Path) -> None:
    model, _ = digits
    request = PassRequest(
        config=PruneMagnitudeConfig(sparsity=0.95), input=model, output=tmp_path / "out.onnx",
        context=PassContext(),
    )  # fmt: skip

    result = handle(request.model_dump_json().encode())

    assert isinstance(result, PassResult)
    assert "output_check" not in result.report.details
