"""Service endpoints: OpenAPI docs, Prometheus job counts, problem+json for unknown routes."""

from __future__ import annotations

from typing import Any

import pytest
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


def test_readyz_names_the_dependency_that_is_down(
    api: Any, monkeypatch: pytest.MonkeyPatch, s3_endpoint: str
) -> None:
    from app import health
    from app.storage import S3Storage

    missing = S3Storage(bucket="no-such-bucket", endpoint_url=s3_endpoint, region="us-east-1")
    monkeypatch.setattr(health, "get_storage", lambda: missing)

    response = api.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["storage"].startswith("down")
    assert response.json()["checks"]["database"] == "ok"


def test_a_shared_deployment_refuses_to_start_without_api_keys() -> None:
    from app.settings import Settings

    unsafe = Settings(database_url="postgresql+psycopg://db/modelpress", auth_required=False)

    with pytest.raises(RuntimeError, match="API keys"):
        unsafe.check_safe_to_serve()
    Settings(database_url="sqlite:///x.db", auth_required=False).check_safe_to_serve()
