"""Every compress job's verdict, through the real service: judged on the user's labelled data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.builders_digits import build_digits_dataset, build_digits_model
from tests.stack import LiveStack


@pytest.fixture(scope="module")
def client(live_stack: LiveStack) -> Iterator[httpx.Client]:
    with live_stack.client() as c:
        yield c


@pytest.fixture(scope="module")
def digits(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The trained digits MLP and 200 of its held-out samples with labels, uploaded."""
    folder = tmp_path_factory.mktemp("verdicts")
    model = _upload(client, build_digits_model(folder / "digits.onnx"), "/v1/models")
    dataset = _upload(client, build_digits_dataset(folder / "eval.npz", limit=200), "/v1/datasets")
    return {"model_id": model["id"], "eval_dataset_id": dataset["id"]}


def _upload(client: httpx.Client, path: Path, endpoint: str) -> dict[str, Any]:
    response = client.post(endpoint, files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _run(live_stack: LiveStack, client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/jobs", json={"benchmark": {"runs": 5, "warmup": 1}, **body})
    assert response.status_code == 202, response.text
    job = live_stack.wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", f"{job['error']}\n{live_stack.logs('worker')}"
    return dict(job)


def test_a_damaging_recipe_is_rejected_on_the_labels_but_kept(
    live_stack: LiveStack, client: httpx.Client, digits: dict[str, str]
) -> None:
    job = _run(live_stack, client, {
        **digits,
        "recipe": {"passes": [{"type": "prune_magnitude", "sparsity": 0.95}]},
        "objective": {"max_accuracy_drop": 0.02},
    })  # fmt: skip

    assert job["verdict"] == "rejected"
    detail = job["verdict_detail"]
    assert detail["basis"] == "labels" and detail["metric"] == "top1"
    assert detail["original"] > 0.9 and detail["delta"] < -0.5
    assert detail["delta"] == pytest.approx(job["metrics"]["accuracy"]["delta"])
    assert "over the budget of 0.02" in detail["reason"]
    assert any("over the accuracy budget" in w for w in job["warnings"]), job["warnings"]
    # kept for inspection: the pruned model is there to download
    assert job["output_model_id"] is not None
    download = client.get(f"/v1/models/{job['output_model_id']}/download")
    assert download.status_code == 200 and download.content


def test_int8_dynamic_on_the_same_data_is_verified(
    live_stack: LiveStack, client: httpx.Client, digits: dict[str, str]
) -> None:
    job = _run(live_stack, client, {
        **digits, "preset": "int8-dynamic", "objective": {"max_accuracy_drop": 0.02},
    })  # fmt: skip

    assert job["verdict"] == "verified", job["verdict_detail"]
    detail = job["verdict_detail"]
    assert detail["basis"] == "labels" and detail["metric"] == "top1"
    assert -detail["delta"] <= 0.02
    assert job["objective"]["max_accuracy_drop"] == 0.02
    assert not any("budget" in w or "unverified" in w for w in job["warnings"])


def test_without_evaluation_data_the_job_is_unverified(
    live_stack: LiveStack, client: httpx.Client, digits: dict[str, str]
) -> None:
    # no objective either: the default budget applies, and still no verdict without real data
    job = _run(live_stack, client, {"model_id": digits["model_id"], "preset": "int8-dynamic"})

    assert job["verdict"] == "unverified"
    assert job["verdict_detail"]["basis"] == "synthetic"
    assert any("real evaluation data" in w for w in job["warnings"]), job["warnings"]


def test_a_benchmark_against_a_baseline_gets_a_verdict_too(
    live_stack: LiveStack, client: httpx.Client, digits: dict[str, str], tmp_path: Path
) -> None:
    broken = _upload(
        client, build_digits_model(tmp_path / "broken.onnx", corrupt_layer=1), "/v1/models"
    )
    response = client.post("/v1/benchmarks", json={
        "model_id": broken["id"], "baseline_model_id": digits["model_id"],
        "eval_dataset_id": digits["eval_dataset_id"], "runs": 5,
    })  # fmt: skip
    job = live_stack.wait_for_job(client, response.json()["id"])

    assert job["status"] == "succeeded", job["error"]
    assert job["verdict"] == "rejected" and job["verdict_detail"]["basis"] == "labels"
