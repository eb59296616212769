"""Limits: reported by GET /v1/limits and enforced with clear problems."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.settings import get_settings
from tests.factories import add_job, add_model


def test_limits_are_reported(api: Any) -> None:
    body = api.get("/v1/limits").json()

    assert body["max_upload_bytes"] == 16 * 1024 * 1024  # the api fixture's setting
    assert body["max_json_bytes"] == get_settings().max_json_bytes
    assert body["max_active_jobs_per_tenant"] > 0


def test_json_bodies_over_the_limit_are_413(api: Any, db_session: Session) -> None:
    model = add_model(db_session)
    padding = "x" * (get_settings().max_json_bytes + 1)

    response = api.post("/v1/jobs", json={"model_id": model.id, "preset": padding})

    assert response.status_code == 413
    assert response.json()["code"] == "request_too_large"


def test_too_many_active_jobs_is_429(
    api: Any, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "max_active_jobs_per_tenant", 2)
    model = add_model(db_session)
    add_job(db_session, model, status="running")
    add_job(db_session, model, status="queued")

    response = api.post("/v1/jobs", json={"model_id": model.id, "preset": "fp16"})

    assert response.status_code == 429
    assert response.json()["code"] == "too_many_active_jobs"
    assert response.headers["retry-after"]


def test_submission_rate_is_limited(
    api: Any, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "job_submissions_per_minute", 3)
    model = add_model(db_session)
    for _ in range(3):
        add_job(db_session, model, status="succeeded")

    response = api.post("/v1/benchmarks", json={"model_id": model.id})

    assert response.status_code == 429
    assert response.json()["code"] == "rate_limited"


def test_model_quota(api: Any, db_session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(get_settings(), "max_models_per_tenant", 1)
    add_model(db_session)

    response = api.post("/v1/models", files={"file": ("m.onnx", b"whatever")})

    assert response.status_code == 409
    assert response.json()["code"] == "quota_exceeded"


def test_limits_report_the_request_bounds(api: Any) -> None:
    body = api.get("/v1/limits").json()

    assert body["max_input_dim"] == 2**20
    assert body["max_input_elements"] == 2**30
    assert body["body_read_timeout_s"] == get_settings().body_read_timeout_s
