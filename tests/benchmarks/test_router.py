"""Creating benchmark jobs over HTTP."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tests.factories import add_model


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
