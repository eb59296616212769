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


def test_openapi_types_the_job_metrics_and_status(api: Any) -> None:
    schemas = api.get("/openapi.json").json()["components"]["schemas"]

    def resolve(prop: dict[str, Any]) -> list[dict[str, Any]]:
        """The schemas a property may hold (null aside), $refs followed."""
        options = prop.get("anyOf", [prop])
        refs = [o["$ref"].rsplit("/", 1)[-1] for o in options if "$ref" in o]
        return [schemas[name] for name in refs] + [o for o in options if "type" in o]

    job = schemas["JobOut"]["properties"]
    pair, single = resolve(job["metrics"])[:2]
    assert {"size_bytes", "latency_ms", "param_count"} <= set(single["properties"])
    metrics = pair["properties"]
    assert metrics["compression_ratio"]["type"] == metrics["speedup_ratio"]["type"] == "number"
    fidelity = resolve(metrics["fidelity"])[0]["properties"]
    assert {"cosine_similarity", "max_abs_error", "mean_abs_error"} <= set(fidelity)
    for side in ("original", "compressed"):
        latency = resolve(resolve(metrics[side])[0]["properties"]["latency_ms"])[0]
        assert {"p50", "p90", "p99", "mean", "std"} <= set(latency["properties"])
    (status,) = resolve(job["status"])
    assert set(status["enum"]) == {"queued", "running", "succeeded", "failed", "canceled"}
    assert set(resolve(job["kind"])[0]["enum"]) == {"compress", "benchmark", "auto", "candidate"}
    report = schemas["JobReport"]["properties"]
    assert resolve(report["weights"]["items"])[0]["properties"]["relative_error"]
    assert resolve(report["sensitivity"]["items"])[0]["properties"]["node"]


def test_metrics_counts_jobs_by_status(db_session: Session) -> None:
    from app.observability.metrics import render_metrics
    from app.settings import get_settings

    model = add_model(db_session)
    add_job(db_session, model, status="failed")
    add_job(db_session, model, status="failed")

    text = render_metrics(db_session, get_settings()).decode()

    assert 'modelpress_jobs{status="failed"} 2.0' in text


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
