"""Submissions tell the client where it stands: RateLimit-* on every 202 and 429."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.settings import get_settings
from tests.factories import add_job, add_model


def test_an_accepted_job_counts_against_the_limit(
    api: Any, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "job_submissions_per_minute", 3)
    model = add_model(db_session)

    first = api.post("/v1/jobs", json={"model_id": model.id, "preset": "fp16"})
    second = api.post("/v1/benchmarks", json={"model_id": model.id})

    assert first.status_code == 202 and second.status_code == 202
    assert first.headers["ratelimit-limit"] == "3"
    assert first.headers["ratelimit-remaining"] == "2"
    assert second.headers["ratelimit-remaining"] == "1"
    assert 0 < int(second.headers["ratelimit-reset"]) <= 60


def test_a_refused_submission_says_when_to_come_back(
    api: Any, db_session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(get_settings(), "job_submissions_per_minute", 2)
    model = add_model(db_session)
    for _ in range(2):
        add_job(db_session, model, status="succeeded")

    for path, body in (("/v1/jobs", {"preset": "fp16"}), ("/v1/benchmarks", {})):
        response = api.post(path, json={"model_id": model.id, **body})

        assert response.status_code == 429
        assert response.json()["code"] == "rate_limited"
        assert response.headers["ratelimit-limit"] == "2"
        assert response.headers["ratelimit-remaining"] == "0"
        assert 0 < int(response.headers["ratelimit-reset"]) <= 60
        assert response.headers["retry-after"]
