"""Auto jobs over HTTP: the request, the objective on plain jobs, and canceling a search."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.factories import add_job, add_model


@pytest.fixture
def model_id(db_session: Session) -> str:
    return add_model(db_session).id


def test_presets_list_auto_without_a_recipe(api: Any) -> None:
    items = {p["name"]: p for p in api.get("/v1/presets").json()["items"]}

    assert items["auto"]["recipe"] == {"passes": []}
    assert "objective" in items["auto"]["description"]


def test_an_auto_job_gets_the_default_objective(api: Any, model_id: str) -> None:
    response = api.post("/v1/jobs", json={"model_id": model_id, "preset": "auto"})

    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "auto" and job["recipe"] == {"passes": []}
    objective = job["objective"]
    assert objective["optimize"] == "balanced" and objective["max_accuracy_drop"] == 0.01
    assert objective["max_candidates"] is None and objective["time_budget_s"] is None
    assert job["candidates"] == [] and job["parent_job_id"] is None


def test_an_objective_is_kept_on_a_plain_job_and_checked(api: Any, model_id: str) -> None:
    body = {"model_id": model_id, "preset": "fp16", "objective": {"max_accuracy_drop": 0.02}}

    job = api.post("/v1/jobs", json=body).json()
    bad = api.post("/v1/jobs", json={**body, "objective": {"optimize": "smallest"}})
    with_recipe = api.post(
        "/v1/jobs",
        json={
            "model_id": model_id,
            "preset": "auto",
            "recipe": {"passes": [{"type": "convert_fp16"}]},
        },
    )

    assert job["kind"] == "compress" and job["objective"]["max_accuracy_drop"] == 0.02
    assert bad.status_code == 422 and with_recipe.status_code == 422


def test_canceling_an_auto_job_cancels_its_candidates_and_lists_them(
    api: Any, db_session: Session
) -> None:
    model = add_model(db_session)
    parent = add_job(db_session, model, kind="auto", status="running", stage="searching",
                     recipe={"passes": []})  # fmt: skip
    running = add_job(db_session, model, kind="candidate", parent_job_id=parent.id,
                      status="running")  # fmt: skip
    done = add_job(db_session, model, kind="candidate", parent_job_id=parent.id,
                   status="succeeded")  # fmt: skip
    add_job(db_session, model)  # another job, not a candidate

    canceled = api.post(f"/v1/jobs/{parent.id}/cancel").json()
    listed = api.get("/v1/jobs", params={"parent_job_id": parent.id}).json()["items"]

    assert canceled["status"] == "canceled"
    statuses = {row["id"]: row["status"] for row in listed}
    assert statuses == {running.id: "canceled", done.id: "succeeded"}
