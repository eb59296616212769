"""The whole service as a user meets it: real API and worker processes, Postgres, Redis, S3."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from tests.builders import build_mlp
from tests.stack import LiveStack


@pytest.fixture(scope="module")
def client(live_stack: LiveStack) -> Iterator[httpx.Client]:
    with live_stack.client() as c:
        yield c


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 256-1024-1024-256: about 6 MB of MatMul weights, the shape of a transformer's FFN.
    return build_mlp(tmp_path_factory.mktemp("e2e") / "mlp.onnx")


def _upload(client: httpx.Client, path: Path) -> dict:
    with path.open("rb") as f:
        response = client.post("/v1/models", files={"file": (path.name, f)})
    assert response.status_code == 201, response.text
    return response.json()


def test_int8_dynamic_job_compresses_an_mlp_end_to_end(
    client: httpx.Client, live_stack: LiveStack, mlp_path: Path, tmp_path: Path
) -> None:
    model = _upload(client, mlp_path)

    created = client.post("/v1/jobs", json={"model_id": model["id"], "preset": "int8-dynamic"})
    assert created.status_code == 202
    job = live_stack.wait_for_job(client, created.json()["id"])

    assert job["status"] == "succeeded", f"{job['error']}\n{live_stack.logs('worker')}"
    assert job["progress"] == 1.0
    metrics = job["metrics"]
    assert metrics["compression_ratio"] > 3
    assert metrics["fidelity"]["cosine_similarity"] > 0.99
    assert metrics["original"]["latency_ms"]["p50"] > 0
    assert metrics["speedup_ratio"] == pytest.approx(
        metrics["original"]["latency_ms"]["p50"] / metrics["compressed"]["latency_ms"]["p50"],
        rel=1e-2,  # the stored latencies are rounded to microseconds
    )
    output = client.get(f"/v1/models/{job['output_model_id']}").json()
    assert output["parent_id"] == model["id"] and output["job_id"] == job["id"]
    assert "MatMulInteger" in output["op_counts"]

    downloaded = tmp_path / "out.onnx"
    downloaded.write_bytes(client.get(f"/v1/models/{output['id']}/download").content)
    assert downloaded.stat().st_size == output["size_bytes"]
    assert mlp_path.stat().st_size / downloaded.stat().st_size > 3
    x = np.random.default_rng(1).standard_normal((4, 256)).astype(np.float32)
    expected = ort.InferenceSession(str(mlp_path)).run(None, {"input": x})[0]
    got = ort.InferenceSession(str(downloaded)).run(None, {"input": x})[0]
    cosine = float((expected * got).sum() / (np.linalg.norm(expected) * np.linalg.norm(got)))
    assert cosine > 0.99

    report = client.get(f"/v1/jobs/{job['id']}/report").json()
    assert [p["type"] for p in report["passes"]] == ["quantize_dynamic"]


def test_fp16_job_halves_the_model(
    client: httpx.Client, live_stack: LiveStack, mlp_path: Path
) -> None:
    model = _upload(client, mlp_path)

    job_id = client.post("/v1/jobs", json={"model_id": model["id"], "preset": "fp16"}).json()["id"]
    job = live_stack.wait_for_job(client, job_id)

    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["compression_ratio"] == pytest.approx(2.0, rel=0.05)
    assert job["metrics"]["fidelity"]["cosine_similarity"] > 0.999


def test_a_pass_that_cannot_apply_fails_the_job_with_a_code(
    client: httpx.Client, live_stack: LiveStack, tmp_path: Path
) -> None:
    from tests.builders import build_conv_net

    model = _upload(client, build_conv_net(tmp_path / "cnn.onnx"))
    recipe = {"passes": [{"type": "quantize_dynamic", "op_types": ["MatMul"]}]}

    job_id = client.post("/v1/jobs", json={"model_id": model["id"], "recipe": recipe}).json()["id"]
    job = live_stack.wait_for_job(client, job_id)

    assert job["status"] == "failed"
    assert job["error"]["code"] == "nothing_to_quantize"
    assert job["output_model_id"] is None


def test_bad_input_gets_problems_and_the_server_keeps_serving(client: httpx.Client) -> None:
    cases = [
        (
            client.post("/v1/models", files={"file": ("x.onnx", os.urandom(2048))}),
            422,
            "invalid_model",
        ),
        (
            client.post("/v1/models", files={"file": ("x.onnx", b"not a model")}),
            422,
            "invalid_model",
        ),
        (client.get("/v1/models/does-not-exist"), 404, "not_found"),
        (client.post("/v1/jobs", json={"model_id": "x", "preset": "nope"}), 404, "not_found"),
        (
            client.post("/v1/models", files={"file": ("x.onnx", b"\0" * (33 * 1024 * 1024))}),
            413,
            "model_too_large",
        ),
    ]

    for response, status, code in cases:
        assert response.status_code == status
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == code
    assert client.get("/healthz").status_code == 200


def test_readyz_reports_every_dependency(client: httpx.Client) -> None:
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def test_web_form_is_served(client: httpx.Client) -> None:
    page = client.get("/")

    assert page.status_code == 200
    assert 'id="file"' in page.text and "int8-dynamic" in page.text
    assert client.get("/static/index.js").status_code == 200


def test_a_model_with_external_data_compresses_from_a_zip(
    client: httpx.Client, live_stack: LiveStack, tmp_path: Path
) -> None:
    import zipfile

    import onnx

    model = onnx.load(str(build_mlp(tmp_path / "plain.onnx", sizes=(64, 256, 16))))
    onnx.save_model(model, str(tmp_path / "model.onnx"), save_as_external_data=True,
                    location="model.onnx.data", size_threshold=0)  # fmt: skip
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as archive:
        archive.write(tmp_path / "model.onnx", "model.onnx")
        archive.write(tmp_path / "model.onnx.data", "model.onnx.data")
    uploaded = _upload(client, tmp_path / "model.zip")

    response = client.post("/v1/jobs", json={"model_id": uploaded["id"], "preset": "int8-dynamic"})
    job = live_stack.wait_for_job(client, response.json()["id"])

    assert uploaded["packaging"] == "zip"
    assert job["status"] == "succeeded", job["error"]
    assert job["metrics"]["fidelity"]["cosine_similarity"] > 0.99
