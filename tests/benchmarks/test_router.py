"""Creating benchmark jobs over HTTP."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tests.factories import add_job, add_model


def test_benchmark_of_a_model_against_a_baseline_is_a_queued_job(
    api: Any, db_session: Session
) -> None:
    baseline, model = add_model(db_session), add_model(db_session, name="small")

    response = api.post(
        "/v1/benchmarks",
        json={"model_id": model.id, "baseline_model_id": baseline.id, "runs": 10, "threads": 1},
    )

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["kind"], job["status"]) == ("benchmark", "queued")
    assert job["baseline_model_id"] == baseline.id
    assert job["benchmark"] == {
        "runs": 10, "warmup": 5, "threads": 1, "provider": "cpu",
        "graph_optimization_level": "all", "batch_sizes": [],
    }  # fmt: skip


def test_unknown_models_are_404(api: Any, db_session: Session) -> None:
    model = add_model(db_session)

    for body in ({"model_id": "nope"}, {"model_id": model.id, "baseline_model_id": "nope"}):
        response = api.post("/v1/benchmarks", json=body)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_out_of_range_options_are_422(api: Any, db_session: Session) -> None:
    model = add_model(db_session)

    response = api.post("/v1/benchmarks", json={"model_id": model.id, "runs": 0})

    assert response.status_code == 422
    assert response.json()["field"] == "runs"


LATENCY = {"p50": 1.0, "p90": 1.2, "p99": 1.5, "mean": 1.05, "std": 0.1, "cv": 0.095}
BLOCK = {"size_bytes": 4096, "param_count": 1000, "latency_ms": LATENCY, "runs": 10, "load_ms": 3.0}
HOST = {
    "cpu": "x",
    "cores": 1,
    "cpu_count": 2,
    "onnxruntime": "1.x",
    "provider": "CPUExecutionProvider",
}


def test_a_finished_benchmark_shows_its_metrics_and_report_as_measured(
    api: Any, db_session: Session
) -> None:
    # what the benchmark stage stores: values it did not measure are absent, never null
    metrics = {
        "original": {**BLOCK, "flops": 500, "throughput_per_s": 950.0},
        "compressed": {**BLOCK, "size_bytes": 1024},
        "compression_ratio": 4.0, "speedup_ratio": 1.0, "pruning_rate": 0.0, "sparsity": 0.0,
        "quantization_error": {"mean_abs": 0.001, "max_abs": 0.01, "tensors": 1},
        "fidelity": {"max_abs_error": 0.0, "mean_abs_error": 0.0, "cosine_similarity": 1.0,
                     "relative_error": 0.0, "samples": 8, "inputs": "synthetic"},
        "host": HOST, "warnings": ["original timings are noisy (cv 0.30)"],
    }  # fmt: skip
    report = {
        "passes": [],
        "weights": [{"name": "w", "stored_as": "w_quantized", "kind": "DequantizeLinear",
                     "shape": [2, 2], "mean_abs": 0.001, "max_abs": 0.01, "relative_error": 0.1}],
        "sensitivity": [{"node": "mm", "op_type": "MatMulInteger", "tensor": "y",
                         "compared_with": "y", "max_abs_error": 0.1, "mean_abs_error": 0.01,
                         "cosine_similarity": 0.99}],
    }  # fmt: skip
    model = add_model(db_session)
    job = add_job(
        db_session, model, kind="benchmark", status="succeeded", recipe={"passes": []},
        baseline_model_id=model.id, metrics=metrics, report=report,
    )  # fmt: skip

    shown = api.get(f"/v1/jobs/{job.id}").json()
    detail = api.get(f"/v1/jobs/{job.id}/report").json()

    assert shown["metrics"] == metrics and shown["recipe"] == {"passes": []}
    assert shown["warnings"] == metrics["warnings"]
    assert (detail["weights"], detail["sensitivity"]) == (report["weights"], report["sensitivity"])
    assert detail["metrics"] == metrics


def test_a_single_model_benchmark_shows_that_models_block(api: Any, db_session: Session) -> None:
    metrics = {**BLOCK, "batch_size": 1, "host": HOST}
    model = add_model(db_session)
    job = add_job(
        db_session, model, kind="benchmark", status="succeeded", recipe={"passes": []},
        metrics=metrics,
    )  # fmt: skip

    assert api.get(f"/v1/jobs/{job.id}").json()["metrics"] == metrics
