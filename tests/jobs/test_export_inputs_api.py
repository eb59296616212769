"""Jobs and benchmarks on models as exporters write them: -1 batch dims and constant control
inputs, checked at the API with clear errors; datasets with `const:` arrays."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from tests.factories import add_model

HIDDEN = 8
# A silero-vad-like model row: audio per sample, a state and a rate without sample axis.
VAD_INPUTS = [
    {"name": "input", "dtype": "float32", "shape": [-1, 64]},
    {"name": "state", "dtype": "float32", "shape": [2, -1, HIDDEN]},
    {"name": "sr", "dtype": "int64", "shape": []},
]


@pytest.fixture
def vad_id(db_session: Session) -> str:
    return add_model(db_session, name="vad", inputs=VAD_INPUTS).id


def _dataset(api: Any, **arrays: Any) -> Any:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return api.post("/v1/datasets", files={"file": ("data.npz", buffer.getvalue())})


def _rows(count: int = 4) -> np.ndarray:
    return np.zeros((count, 64), np.float32)


def _state() -> np.ndarray:
    return np.zeros((2, 1, HIDDEN), np.float32)


def test_shapes_and_data_fit_dims_the_model_stores_as_minus_one(
    api: Any, db_session: Session
) -> None:
    model = add_model(
        db_session, inputs=[{"name": "x", "dtype": "float32", "shape": [-1, 3, -1, -1]}]
    )

    dataset = _dataset(api, x=np.zeros((4, 3, 48, 192), np.float32)).json()

    response = api.post(
        "/v1/jobs",
        json={"model_id": model.id, "preset": "int8-static",
              "input_shapes": {"x": [1, 3, 48, 192]}, "calibration_dataset_id": dataset["id"]},
    )  # fmt: skip

    assert response.status_code == 202, response.json()
    assert response.json()["input_shapes"] == {"x": [1, 3, 48, 192]}


def test_input_values_are_checked_and_kept_on_the_job(api: Any, vad_id: str) -> None:
    body = {
        "model_id": vad_id,
        "preset": "int8-static",
        "input_values": {"sr": 16000, "state": _state().tolist()},
    }

    response = api.post("/v1/jobs", json=body)

    assert response.status_code == 202, response.json()
    job = api.get(f"/v1/jobs/{response.json()['id']}").json()
    assert job["input_values"]["sr"] == 16000
    assert np.asarray(job["input_values"]["state"]).shape == (2, 1, HIDDEN)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rate": 16000}, "unknown input(s) ['rate']"),
        ({"sr": [16000, 8000]}, "rank 1"),
        ({"state": [[0.0] * HIDDEN]}, "rank 2"),
        ({"sr": "16000"}, "give a number"),
        ({"state": [[["0.0"] * HIDDEN]] * 2}, "a number or a nested list"),
        ({"sr": 1.5}, "whole numbers"),
    ],
)
def test_bad_input_values_are_422_naming_the_field(
    api: Any, vad_id: str, values: dict[str, Any], message: str
) -> None:
    response = api.post(
        "/v1/jobs", json={"model_id": vad_id, "preset": "int8-dynamic", "input_values": values}
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "invalid_request"
    assert problem["field"].startswith("input_values")
    assert message in problem["detail"]


def test_const_arrays_satisfy_inputs_without_sample_axis(api: Any, vad_id: str) -> None:
    upload = _dataset(api, input=_rows(), **{"const:state": _state(), "const:sr": np.array(16000)})
    assert upload.status_code == 201, upload.json()
    assert upload.json()["num_samples"] == 4
    assert upload.json()["arrays"]["const:sr"] == {"shape": [], "dtype": "int64"}

    response = api.post(
        "/v1/jobs",
        json={"model_id": vad_id, "preset": "int8-static",
              "calibration_dataset_id": upload.json()["id"]},
    )  # fmt: skip

    assert response.status_code == 202, response.json()


def test_input_values_stand_in_for_arrays_a_dataset_lacks(api: Any, vad_id: str) -> None:
    dataset_id = _dataset(api, input=_rows(), **{"const:state": _state()}).json()["id"]
    body = {"model_id": vad_id, "preset": "int8-static", "calibration_dataset_id": dataset_id}

    without = api.post("/v1/jobs", json=body)
    given = api.post("/v1/jobs", json={**body, "input_values": {"sr": 16000}})

    assert without.status_code == 422 and without.json()["code"] == "dataset_mismatch"
    assert "const:sr" in without.json()["detail"]
    assert given.status_code == 202, given.json()


def test_a_state_saved_per_sample_without_sample_axis_says_how_to_fix_it(
    api: Any, vad_id: str
) -> None:
    dataset_id = _dataset(
        api, input=_rows(2), state=_state(), **{"const:sr": np.array(16000)}
    ).json()["id"]

    response = api.post(
        "/v1/jobs",
        json={"model_id": vad_id, "preset": "int8-static", "calibration_dataset_id": dataset_id},
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["code"] == "dataset_mismatch"
    assert "save it as 'const:state'" in problem["detail"]
    assert "[samples, 2, ?, 8]" in problem["detail"]


def test_a_scalar_without_sample_axis_is_refused_at_upload_with_the_fix(api: Any) -> None:
    response = _dataset(api, input=_rows(), sr=np.array(16000))

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_dataset"
    assert "'const:sr'" in response.json()["detail"]


def test_benchmarks_take_input_values_too(api: Any, vad_id: str) -> None:
    ok = api.post(
        "/v1/benchmarks", json={"model_id": vad_id, "runs": 3, "input_values": {"sr": 16000}}
    )
    bad = api.post("/v1/benchmarks", json={"model_id": vad_id, "input_values": {"sr": [1]}})

    assert ok.status_code == 202, ok.json()
    assert ok.json()["input_values"] == {"sr": 16000}
    assert bad.status_code == 422 and bad.json()["field"] == "input_values"
