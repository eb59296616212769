"""Creating, reading and canceling jobs over HTTP; bad requests get clean errors."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.factories import add_job, add_model


@pytest.fixture
def model_id(db_session: Session) -> str:
    return add_model(db_session).id


def test_presets_list_every_preset_with_its_recipe(api: Any) -> None:
    items = {p["name"]: p for p in api.get("/v1/presets").json()["items"]}

    assert {"int8-dynamic", "fp16"} <= set(items)
    assert items["int8-dynamic"]["recipe"]["passes"][0]["type"] == "quantize_dynamic"


def test_create_job_from_a_preset_echoes_the_recipe(api: Any, model_id: str) -> None:
    response = api.post("/v1/jobs", json={"model_id": model_id, "preset": "int8-dynamic"})

    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["progress"] == 0.0
    assert job["recipe"]["passes"][0]["type"] == "quantize_dynamic"
    assert job["recipe"]["passes"][0]["weight_type"] == "int8"
    assert api.get(f"/v1/jobs/{job['id']}").json()["id"] == job["id"]


def test_create_job_from_a_recipe(api: Any, model_id: str) -> None:
    recipe = {"passes": [{"type": "quantize_dynamic", "per_channel": True}]}

    job = api.post("/v1/jobs", json={"model_id": model_id, "recipe": recipe}).json()

    assert job["recipe"]["passes"][0]["per_channel"] is True
    assert job["preset"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"preset": "int3-magic"}, "preset"),
        ({"recipe": {"passes": [{"type": "teleport"}]}}, "recipe.passes.0"),
        (
            {"recipe": {"passes": [{"type": "quantize_dynamic", "weight_type": "int2"}]}},
            "recipe.passes.0.quantize_dynamic.weight_type",
        ),
        (
            {"recipe": {"passes": [{"type": "quantize_dynamic", "bogus": 1}]}},
            "recipe.passes.0.quantize_dynamic.bogus",
        ),
        ({"recipe": {"passes": []}}, "recipe.passes"),
    ],
)
def test_bad_recipes_are_422_naming_the_field(
    api: Any, model_id: str, body: dict[str, Any], field: str
) -> None:
    response = api.post("/v1/jobs", json={"model_id": model_id, **body})

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_recipe"
    assert problem["field"] == field
    assert field in problem["detail"]


def test_preset_and_recipe_together_are_refused(api: Any, model_id: str) -> None:
    response = api.post(
        "/v1/jobs",
        json={
            "model_id": model_id,
            "preset": "fp16",
            "recipe": {"passes": [{"type": "convert_fp16"}]},
        },
    )

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_unknown_model_is_404(api: Any) -> None:
    response = api.post("/v1/jobs", json={"model_id": "missing", "preset": "fp16"})

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_input_shapes_must_match_the_model_inputs(api: Any, model_id: str) -> None:
    response = api.post(
        "/v1/jobs",
        json={"model_id": model_id, "preset": "fp16", "input_shapes": {"pixels": [1, 3]}},
    )

    assert response.status_code == 422
    assert "input_shapes" in response.json()["detail"]


def test_cancel_a_queued_job_then_again(api: Any, db_session: Session) -> None:
    job = add_job(db_session, add_model(db_session))

    first = api.post(f"/v1/jobs/{job.id}/cancel")
    second = api.post(f"/v1/jobs/{job.id}/cancel")

    assert first.status_code == 200 and first.json()["status"] == "canceled"
    assert second.json()["status"] == "canceled"
    assert second.json()["finished_at"] == first.json()["finished_at"]


def test_a_finished_job_is_not_changed_by_cancel(api: Any, db_session: Session) -> None:
    job = add_job(db_session, add_model(db_session), status="succeeded", progress=1.0)

    assert api.post(f"/v1/jobs/{job.id}/cancel").json()["status"] == "succeeded"


def test_list_jobs_filters_by_status(api: Any, db_session: Session) -> None:
    model = add_model(db_session)
    failed = add_job(db_session, model, status="failed")
    add_job(db_session, model, status="queued")

    items = api.get("/v1/jobs", params={"status": "failed"}).json()["items"]

    assert [j["id"] for j in items] == [failed.id]


def test_list_jobs_by_kind_leaves_out_an_auto_searchs_candidates(
    api: Any, db_session: Session
) -> None:
    model = add_model(db_session)
    compress = add_job(db_session, model, kind="compress")
    auto = add_job(db_session, model, kind="auto", recipe={"passes": []})
    add_job(db_session, model, kind="candidate", parent_job_id=auto.id)

    listed = api.get("/v1/jobs", params={"kind": ["compress", "auto"]}).json()["items"]
    unknown = api.get("/v1/jobs", params={"kind": "paused"})

    assert {j["id"] for j in listed} == {compress.id, auto.id}
    assert unknown.status_code == 422


def test_deleting_a_model_with_an_active_job_is_409(api: Any, db_session: Session) -> None:
    model = add_model(db_session)
    add_job(db_session, model, status="running")

    response = api.delete(f"/v1/models/{model.id}")

    assert response.status_code == 409
    assert response.json()["code"] == "model_in_use"


def test_unknown_job_is_404(api: Any) -> None:
    for method, path in (
        ("get", "/v1/jobs/nope"),
        ("post", "/v1/jobs/nope/cancel"),
        ("get", "/v1/jobs/nope/report"),
    ):
        response = getattr(api, method)(path)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
