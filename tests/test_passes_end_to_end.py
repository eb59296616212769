"""Every preset, chained recipes, calibration and evaluation data, through the real service."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.builders import build_cnn_residual, build_mlp, build_transformer_block
from tests.builders_digits import build_digits_dataset, build_digits_model
from tests.stack import LiveStack


@pytest.fixture(scope="module")
def client(live_stack: LiveStack) -> Iterator[httpx.Client]:
    with live_stack.client() as c:
        yield c


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("presets")
    return {
        "mlp": build_mlp(folder / "mlp.onnx", sizes=(128, 256, 256, 64)),
        "cnn": build_cnn_residual(folder / "cnn.onnx"),
        "transformer": build_transformer_block(folder / "transformer.onnx"),
    }


def _upload(client: httpx.Client, path: Path, endpoint: str = "/v1/models") -> dict[str, Any]:
    response = client.post(endpoint, files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _run(live_stack: LiveStack, client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"benchmark": {"runs": 5, "warmup": 1}, **body})
    assert response.status_code == 202, response.text
    job = live_stack.wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    return dict(job)


Check = Callable[[dict[str, Any], dict[str, Any]], None]


def _ratio_above(minimum: float) -> Check:
    def check(job: dict[str, Any], output: dict[str, Any]) -> None:
        assert job["metrics"]["compression_ratio"] > minimum

    return check


def _sparse(job: dict[str, Any], output: dict[str, Any]) -> None:
    assert job["metrics"]["sparsity"] >= 0.45
    assert job["metrics"]["pruning_rate"] >= 0.45


def _fewer_params(job: dict[str, Any], output: dict[str, Any]) -> None:
    metrics = job["metrics"]
    assert metrics["compressed"]["param_count"] < 0.9 * metrics["original"]["param_count"]
    assert metrics["compressed"]["flops"] < metrics["original"]["flops"]


def _small_in_transport(job: dict[str, Any], output: dict[str, Any]) -> None:
    original_size = job["metrics"]["original"]["size_bytes"]
    assert output["transport_size_bytes"] < original_size / 4


@pytest.mark.parametrize(
    ("preset", "model", "check", "op"),
    [
        ("int8-dynamic", "mlp", _ratio_above(3), "MatMulInteger"),
        ("int8-static", "cnn", _ratio_above(1.8), "QuantizeLinear"),
        ("int4-weight-only", "transformer", _ratio_above(4), "MatMulNBits"),
        ("fp16", "transformer", _ratio_above(1.8), "Cast"),
        ("prune-unstructured-50", "mlp", _sparse, None),
        ("prune-channels-30", "cnn", _fewer_params, None),
        ("deep-compression", "mlp", _small_in_transport, "Gather"),
    ],
)
def test_every_preset_runs_through_the_api(
    live_stack: LiveStack, client: httpx.Client, models: dict[str, Path],
    preset: str, model: str, check: Check, op: str | None,
) -> None:  # fmt: skip
    model_id = _upload(client, models[model])["id"]

    job = _run(live_stack, client, {"model_id": model_id, "preset": preset})

    output = client.get(f"/v1/models/{job['output_model_id']}").json()
    check(job, output)
    if op is not None:
        assert op in output["op_counts"]
    report = client.get(f"/v1/jobs/{job['id']}/report").json()
    assert [p["type"] for p in report["passes"]] == [p["type"] for p in job["recipe"]["passes"]]
    assert job["metrics"]["fidelity"]["cosine_similarity"] > 0.5


@pytest.mark.parametrize(
    "passes",
    [
        [{"type": "prune_magnitude", "sparsity": 0.3}, {"type": "quantize_dynamic"}],
        [{"type": "factorize_low_rank", "rank_ratio": 0.5}, {"type": "quantize_dynamic"}],
    ],
    ids=["prune-then-quantize", "factorize-then-quantize"],
)
def test_chained_recipes_run_end_to_end(
    live_stack: LiveStack, client: httpx.Client, models: dict[str, Path], passes: list[dict]
) -> None:
    model_id = _upload(client, models["transformer"])["id"]

    job = _run(live_stack, client, {"model_id": model_id, "recipe": {"passes": passes}})

    assert job["metrics"]["compression_ratio"] > 2
    assert len(client.get(f"/v1/jobs/{job['id']}/report").json()["passes"]) == 2


def test_static_quantization_calibrates_on_the_uploaded_dataset(
    live_stack: LiveStack, client: httpx.Client, models: dict[str, Path], tmp_path: Path
) -> None:
    samples = np.random.default_rng(3).standard_normal((16, 3, 32, 32)).astype(np.float32)
    np.savez(tmp_path / "calibration.npz", image=samples)
    model_id = _upload(client, models["cnn"])["id"]
    dataset_id = _upload(client, tmp_path / "calibration.npz", "/v1/datasets")["id"]

    job = _run(live_stack, client, {
        "model_id": model_id, "preset": "int8-static", "calibration_dataset_id": dataset_id,
    })  # fmt: skip

    details = client.get(f"/v1/jobs/{job['id']}/report").json()["passes"][0]["details"]
    assert details["calibration"] == {"source": "dataset", "samples": 16, "method": "minmax"}


def _accuracy(path: Path, inputs: np.ndarray, labels: np.ndarray) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # One sample per run, as the service evaluates: dynamic quantization scales per run.
    hits = [
        int(session.run(None, {"input": inputs[i : i + 1]})[0].argmax()) == int(labels[i])
        for i in range(len(labels))
    ]
    return sum(hits) / len(hits)


def test_accuracy_on_labelled_digits_matches_what_we_compute_ourselves(
    live_stack: LiveStack, client: httpx.Client, tmp_path: Path
) -> None:
    model_path = build_digits_model(tmp_path / "digits.onnx")
    eval_path = build_digits_dataset(tmp_path / "digits-eval.npz", limit=200)
    model_id = _upload(client, model_path)["id"]
    dataset_id = _upload(client, eval_path, "/v1/datasets")["id"]

    job = _run(live_stack, client, {
        "model_id": model_id, "preset": "int8-dynamic", "eval_dataset_id": dataset_id,
    })  # fmt: skip

    output = tmp_path / "digits-int8.onnx"
    output.write_bytes(client.get(f"/v1/models/{job['output_model_id']}/download").content)
    data = np.load(eval_path)
    accuracy = job["metrics"]["accuracy"]
    assert accuracy["metric"] == "top1"
    assert accuracy["original"] == pytest.approx(
        _accuracy(model_path, data["input"], data["labels"])
    )
    assert accuracy["compressed"] == pytest.approx(_accuracy(output, data["input"], data["labels"]))
    assert accuracy["original"] > 0.9
    report = client.get(f"/v1/jobs/{job['id']}/report").json()
    assert report.get("weights") and report.get("sensitivity"), report
    assert job["metrics"]["quantization_error"]["max_abs"] > 0


def test_a_broken_compression_shows_in_the_metrics(
    live_stack: LiveStack, client: httpx.Client, tmp_path: Path
) -> None:
    good = _upload(client, build_digits_model(tmp_path / "good.onnx"))["id"]
    broken = _upload(client, build_digits_model(tmp_path / "broken.onnx", corrupt_layer=1))["id"]
    dataset_id = _upload(
        client, build_digits_dataset(tmp_path / "eval.npz", limit=200), "/v1/datasets"
    )["id"]

    response = client.post("/v1/benchmarks", json={
        "model_id": broken, "baseline_model_id": good, "eval_dataset_id": dataset_id, "runs": 5,
    })  # fmt: skip
    job = live_stack.wait_for_job(client, response.json()["id"])

    assert job["status"] == "succeeded", job["error"]
    assert job["kind"] == "benchmark" and job["output_model_id"] is None
    assert job["metrics"]["fidelity"]["cosine_similarity"] < 0.5
    assert job["metrics"]["accuracy"]["delta"] < -0.5


def test_a_single_model_benchmark_describes_that_model(
    live_stack: LiveStack, client: httpx.Client, models: dict[str, Path]
) -> None:
    model_id = _upload(client, models["mlp"])["id"]

    response = client.post("/v1/benchmarks", json={"model_id": model_id, "runs": 5})
    job = live_stack.wait_for_job(client, response.json()["id"])

    assert job["status"] == "succeeded", job["error"]
    metrics = job["metrics"]
    assert metrics["latency_ms"]["p50"] > 0 and metrics["size_bytes"] > 0
    assert metrics["host"]["provider"] == "CPUExecutionProvider"


def test_session_options_reach_the_benchmark_and_a_missing_provider_is_a_clear_failure(
    live_stack: LiveStack, client: httpx.Client, models: dict[str, Path]
) -> None:
    model_id = _upload(client, models["mlp"])["id"]
    common = {"model_id": model_id, "runs": 3, "input_shapes": {"input": [1, 128]}}

    tuned = client.post("/v1/benchmarks", json={
        **common, "graph_optimization_level": "basic", "threads": 2,
    })  # fmt: skip
    missing = client.post("/v1/benchmarks", json={**common, "provider": "tensorrt"})
    tuned_job = live_stack.wait_for_job(client, tuned.json()["id"])
    missing_job = live_stack.wait_for_job(client, missing.json()["id"])

    assert tuned_job["status"] == "succeeded", tuned_job["error"]
    assert tuned_job["metrics"]["host"]["cores"] == 2
    assert (missing_job["status"], missing_job["error"]["code"]) == (
        "failed",
        "provider_unavailable",
    )
