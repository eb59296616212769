"""Uploading datasets and using them in jobs; bad files and mismatches get clean errors."""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session

from tests.factories import add_job, add_model


def _npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _upload(api: Any, content: bytes, filename: str = "data.npz") -> Any:
    return api.post("/v1/datasets", files={"file": (filename, content)})


@pytest.fixture
def model_id(db_session: Session) -> str:
    # factories.add_model: input "input" [batch, 16] float32
    return add_model(db_session).id


def test_upload_reports_arrays_samples_and_labels(api: Any) -> None:
    content = _npz(input=np.zeros((10, 16), np.float32), labels=np.arange(10))

    response = _upload(api, content)

    assert response.status_code == 201
    body = response.json()
    assert body["num_samples"] == 10 and body["has_labels"] is True
    assert body["arrays"]["input"] == {"shape": [10, 16], "dtype": "float32"}
    assert api.get(f"/v1/datasets/{body['id']}").json()["id"] == body["id"]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(_npz(input=np.array([{"a": 1}, None], dtype=object)), id="object-array"),
        pytest.param(os.urandom(2048), id="random-bytes"),
        pytest.param(b"", id="empty"),
        pytest.param(_npz(input=np.zeros((10, 4)), labels=np.zeros(9)), id="ragged-samples"),
        pytest.param(_npz(input=np.array(["a", "b"])), id="strings"),
        pytest.param(_zip({"a.txt": b"a"}), id="zip-without-arrays"),
        pytest.param(_zip({"../input.npy": b"x"}), id="path-traversal-member"),
    ],
)
def test_bad_datasets_are_422(api: Any, content: bytes) -> None:
    response = _upload(api, content)

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_dataset"


def test_job_with_a_dataset_that_does_not_fit_the_model_is_dataset_mismatch(
    api: Any, model_id: str
) -> None:
    wrong_name = _upload(api, _npz(pixels=np.zeros((4, 16), np.float32))).json()["id"]
    wrong_shape = _upload(api, _npz(input=np.zeros((4, 15), np.float32))).json()["id"]
    wrong_dtype = _upload(api, _npz(input=np.zeros((4, 16), np.float64))).json()["id"]

    for dataset_id in (wrong_name, wrong_shape, wrong_dtype):
        response = api.post(
            "/v1/jobs",
            json={"model_id": model_id, "preset": "int8-dynamic", "eval_dataset_id": dataset_id},
        )
        assert response.status_code == 422
        assert response.json()["code"] == "dataset_mismatch"
        assert response.json()["field"] == "eval_dataset_id"


def test_job_with_a_fitting_dataset_records_it(api: Any, model_id: str) -> None:
    dataset_id = _upload(api, _npz(input=np.zeros((4, 16), np.float32))).json()["id"]

    job = api.post(
        "/v1/jobs",
        json={"model_id": model_id, "preset": "int8-dynamic", "calibration_dataset_id": dataset_id},
    ).json()

    assert job["calibration_dataset_id"] == dataset_id


def test_unknown_dataset_is_404(api: Any, model_id: str) -> None:
    response = api.post(
        "/v1/jobs", json={"model_id": model_id, "preset": "fp16", "eval_dataset_id": "nope"}
    )

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_a_dataset_in_use_cannot_be_deleted(api: Any, db_session: Session) -> None:
    dataset_id = _upload(api, _npz(input=np.zeros((4, 16), np.float32))).json()["id"]
    add_job(db_session, add_model(db_session), status="running", eval_dataset_id=dataset_id)

    response = api.delete(f"/v1/datasets/{dataset_id}")

    assert response.status_code == 409
    assert response.json()["code"] == "dataset_in_use"


def test_delete_then_404(api: Any) -> None:
    dataset_id = _upload(api, _npz(input=np.zeros((4, 16), np.float32))).json()["id"]

    assert api.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert api.get(f"/v1/datasets/{dataset_id}").status_code == 404
