"""Cheap polling: a job or model answers 304 while it has not changed since the caller's ETag."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from tests.factories import add_job, add_model


def test_an_unchanged_job_is_304_and_a_changed_one_has_a_new_etag(
    api: Any, db_session: Session
) -> None:
    job = add_job(db_session, add_model(db_session))
    first = api.get(f"/v1/jobs/{job.id}")
    etag = first.headers["etag"]

    unchanged = api.get(f"/v1/jobs/{job.id}", headers={"If-None-Match": etag})

    assert first.status_code == 200 and etag.startswith('"') and not etag.startswith("W/")
    assert unchanged.status_code == 304
    assert unchanged.content == b""
    assert unchanged.headers["etag"] == etag

    job.status, job.progress = "running", 0.5
    db_session.commit()
    changed = api.get(f"/v1/jobs/{job.id}", headers={"If-None-Match": etag})

    assert changed.status_code == 200
    assert changed.json()["status"] == "running"
    assert changed.headers["etag"] != etag


def test_an_unchanged_model_is_304(api: Any, db_session: Session) -> None:
    model = add_model(db_session)
    etag = api.get(f"/v1/models/{model.id}").headers["etag"]

    again = api.get(f"/v1/models/{model.id}", headers={"If-None-Match": f'"other", {etag}'})
    other = api.get(f"/v1/models/{model.id}", headers={"If-None-Match": '"other"'})

    assert again.status_code == 304 and again.content == b""
    assert other.status_code == 200 and other.json()["id"] == model.id
    assert other.headers["etag"] == etag


def test_a_missing_job_is_still_a_404(api: Any) -> None:
    response = api.get("/v1/jobs/nope", headers={"If-None-Match": "*"})

    assert response.status_code == 404
