"""Service endpoints: OpenAPI docs, Prometheus job counts, problem+json for unknown routes."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tests.factories import add_job, add_model


def test_openapi_documents_the_upload_and_recipe_fields(api: Any) -> None:
    schema = api.get("/openapi.json").json()

    upload = schema["paths"]["/v1/models"]["post"]["requestBody"]["content"]
    assert "multipart/form-data" in upload
    weight_type = schema["components"]["schemas"]["QuantizeDynamicConfig"]["properties"][
        "weight_type"
    ]
    assert weight_type["description"]
    assert api.get("/docs").status_code == 200


def test_metrics_counts_jobs_by_status(db_session: Session) -> None:
    from app.health import job_counts_text

    model = add_model(db_session)
    add_job(db_session, model, status="failed")
    add_job(db_session, model, status="failed")

    text = job_counts_text(db_session)

    assert 'modelpress_jobs{status="failed"} 2' in text


def test_unknown_route_is_a_problem(api: Any) -> None:
    response = api.get("/v2/nothing")

    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"
