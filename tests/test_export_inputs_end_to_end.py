"""Exports through the real service: a -1 batch dim, a silero-vad-like model with constant
control inputs, fp16 after int8, and a pass that breaks the model saying so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.builders import build_cnn_residual, build_mlp
from tests.builders_digits import build_digits_dataset, build_digits_model
from tests.builders_exports import build_minus_one_batch_classifier
from tests.builders_recurrent import (
    SILERO_HIDDEN,
    SILERO_RATE,
    build_silero_like_vad,
    silero_like_feed,
)
from tests.stack import LiveStack

FAST = {"runs": 3, "warmup": 1}


@pytest.fixture(scope="module")
def client(live_stack: LiveStack) -> Iterator[httpx.Client]:
    with live_stack.client() as c:
        yield c


def _upload(client: httpx.Client, path: Path, endpoint: str = "/v1/models") -> dict[str, Any]:
    response = client.post(endpoint, files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _job(live_stack: LiveStack, client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"benchmark": FAST, **body})
    assert response.status_code == 202, response.text
    return dict(live_stack.wait_for_job(client, response.json()["id"]))


def _succeeded(live_stack: LiveStack, client: httpx.Client, body: dict[str, Any]) -> Any:
    job = _job(live_stack, client, body)
    assert job["status"] == "succeeded", job["error"]
    return job


def test_a_minus_one_batch_classifier_compresses_and_benchmarks(
    live_stack: LiveStack, client: httpx.Client, tmp_path: Path
) -> None:
    model = _upload(client, build_minus_one_batch_classifier(tmp_path / "cls.onnx"))
    assert model["inputs"][0]["shape"] == ["?", 3, "?", "?"]

    job = _succeeded(live_stack, client, {
        "model_id": model["id"], "preset": "int8-static", "input_shapes": {"x": [1, 3, 48, 192]},
        "benchmark": {**FAST, "batch_sizes": [2]},
    })  # fmt: skip

    metrics = job["metrics"]
    assert metrics["original"]["flops"] > 0 and metrics["compressed"]["batch_size"] == 1
    assert set(metrics["compressed"]["throughput_by_batch"]) == {"2"}
    assert metrics["fidelity"]["cosine_similarity"] > 0.99


@pytest.fixture(scope="module")
def vad(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _upload(client, build_silero_like_vad(tmp_path_factory.mktemp("vad") / "vad.onnx"))


def test_silero_like_calibrated_on_a_dataset_with_constant_state_and_rate(
    live_stack: LiveStack, client: httpx.Client, vad: dict[str, Any], tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "cal.npz",
        input=np.concatenate([silero_like_feed(rng)["input"] for _ in range(16)]),
        **{
            "const:state": np.zeros((2, 1, SILERO_HIDDEN), np.float32),
            "const:sr": np.array(SILERO_RATE),
        },
    )
    dataset = _upload(client, tmp_path / "cal.npz", "/v1/datasets")

    job = _succeeded(live_stack, client, {
        "model_id": vad["id"], "preset": "int8-static", "calibration_dataset_id": dataset["id"],
        "eval_dataset_id": dataset["id"],
    })  # fmt: skip

    assert job["metrics"]["fidelity"]["inputs"] == "dataset"
    assert job["metrics"]["fidelity"]["cosine_similarity"] > 0.99


def test_silero_like_with_input_values_and_no_dataset(
    live_stack: LiveStack, client: httpx.Client, vad: dict[str, Any]
) -> None:
    job = _succeeded(live_stack, client, {
        "model_id": vad["id"], "preset": "int8-dynamic", "input_values": {"sr": SILERO_RATE},
    })  # fmt: skip

    assert job["input_values"] == {"sr": SILERO_RATE}
    assert job["metrics"]["fidelity"]["cosine_similarity"] > 0.99
    check = client.get(f"/v1/jobs/{job['id']}/report").json()["passes"][0]["details"]
    assert check["output_check"]["collapsed"] is False


def test_fp16_after_int8_static_keeps_the_qdq_islands_or_says_already_quantized(
    live_stack: LiveStack, client: httpx.Client, tmp_path: Path
) -> None:
    model_id = _upload(client, build_cnn_residual(tmp_path / "cnn.onnx"))["id"]
    partly = [{"type": "quantize_static", "op_types": ["Conv"]}, {"type": "convert_fp16"}]

    chained = _succeeded(live_stack, client, {"model_id": model_id, "recipe": {"passes": partly}})
    int8 = _succeeded(live_stack, client, {"model_id": model_id, "preset": "int8-static"})
    again = _job(live_stack, client, {"model_id": int8["output_model_id"], "preset": "fp16"})

    output = client.get(f"/v1/models/{chained['output_model_id']}").json()
    assert {"QuantizeLinear", "DequantizeLinear", "Cast"} <= set(output["op_counts"])
    assert chained["metrics"]["fidelity"]["cosine_similarity"] > 0.99
    assert again["status"] == "failed"
    assert again["error"]["code"] == "already_quantized"


def test_a_pass_that_breaks_the_model_warns_naming_the_worst_nodes(
    live_stack: LiveStack, client: httpx.Client, tmp_path: Path
) -> None:
    model_id = _upload(client, build_digits_model(tmp_path / "digits.onnx"))["id"]
    dataset_id = _upload(client, build_digits_dataset(tmp_path / "cal.npz"), "/v1/datasets")["id"]
    mlp_id = _upload(client, build_mlp(tmp_path / "mlp.onnx", sizes=(64, 128, 64)))["id"]

    broken = _succeeded(live_stack, client, {
        "model_id": model_id, "calibration_dataset_id": dataset_id,
        "recipe": {"passes": [{"type": "prune_magnitude", "sparsity": 0.95}]},
    })  # fmt: skip
    healthy = _succeeded(live_stack, client, {"model_id": mlp_id, "preset": "int8-dynamic"})

    [warning] = [w for w in broken["warnings"] if "broke the model's outputs" in w]
    assert "on the calibration data" in warning and "top-1 agreement" in warning
    assert "fc0/MatMul (MatMul" in warning
    assert not any("broke the model's outputs" in w for w in healthy["warnings"])
