"""Uploading, reading, downloading and deleting models over HTTP; bad files get clean errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import onnx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.onnx_models.tables import ModelTable
from app.storage import LocalStorage
from tests.builders import build_mlp


@pytest.fixture(scope="module")
def mlp_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_mlp(tmp_path_factory.mktemp("m") / "mlp.onnx", sizes=(32, 64, 8)).read_bytes()


def _upload(api: Any, content: bytes, filename: str = "mlp.onnx", **data: str) -> Any:
    return api.post("/v1/models", files={"file": (filename, content)}, data=data)


def _stored_objects(storage: LocalStorage) -> list[Path]:
    return [p for p in storage.root.rglob("*") if p.is_file()]


def test_upload_records_the_model_metadata(api: Any, mlp_bytes: bytes) -> None:
    response = _upload(api, mlp_bytes, name="tiny mlp")

    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/models/{body['id']}"
    assert body["name"] == "tiny mlp"
    assert body["sha256"] == hashlib.sha256(mlp_bytes).hexdigest()
    assert body["size_bytes"] == len(mlp_bytes)
    assert body["opset"] == 17 and body["format"] == "onnx"
    assert body["inputs"] == [{"name": "input", "dtype": "float32", "shape": ["batch", 32]}]
    assert body["outputs"][0]["name"] == "logits"
    assert body["op_counts"] == {"MatMul": 2, "Add": 2, "Relu": 1}
    assert body["param_count"] == 32 * 64 + 64 + 64 * 8 + 8
    assert body["parent_id"] is None and body["job_id"] is None


def test_download_returns_the_uploaded_bytes(api: Any, mlp_bytes: bytes) -> None:
    model_id = _upload(api, mlp_bytes).json()["id"]

    response = api.get(f"/v1/models/{model_id}/download")

    assert response.status_code == 200
    assert response.content == mlp_bytes
    assert "attachment" in response.headers["content-disposition"]


def test_list_and_get(api: Any, mlp_bytes: bytes) -> None:
    ids = {_upload(api, mlp_bytes).json()["id"] for _ in range(3)}

    page = api.get("/v1/models", params={"limit": 2}).json()
    rest = api.get("/v1/models", params={"limit": 2, "cursor": page["next_cursor"]}).json()

    listed = {m["id"] for m in page["items"] + rest["items"]}
    assert ids <= listed
    one = ids.pop()
    assert api.get(f"/v1/models/{one}").json()["id"] == one


def test_delete_removes_the_row(api: Any, mlp_bytes: bytes) -> None:
    # Its file going with its last row: tests/storage/test_objects.py, on committed requests.
    model_id = _upload(api, mlp_bytes).json()["id"]

    assert api.delete(f"/v1/models/{model_id}").status_code == 204

    assert api.get(f"/v1/models/{model_id}").json()["code"] == "not_found"


def _truncated(mlp: bytes) -> bytes:
    return mlp[: len(mlp) // 2]


def _not_a_model(_: bytes) -> bytes:
    return onnx.helper.make_tensor("t", onnx.TensorProto.FLOAT, [2], [1.0, 2.0]).SerializeToString()


@pytest.mark.parametrize(
    "make_content",
    [
        pytest.param(lambda _: b"", id="empty"),
        pytest.param(lambda _: os.urandom(4096), id="random-bytes"),
        pytest.param(lambda _: b"hello, I am a text file\n" * 50, id="text-file"),
        pytest.param(_truncated, id="truncated"),
        pytest.param(_not_a_model, id="protobuf-not-a-model"),
    ],
)
def test_bad_files_are_rejected_and_leave_nothing(
    api: Any, mlp_bytes: bytes, make_content: Any, api_storage: LocalStorage, db_session: Session
) -> None:
    response = _upload(api, make_content(mlp_bytes))

    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "invalid_model" and problem["status"] == 422 and problem["detail"]
    assert _stored_objects(api_storage) == []
    assert db_session.scalar(select(func.count()).select_from(ModelTable)) == 0
    assert api.get("/healthz").status_code == 200


def test_oversize_upload_is_413(api: Any, api_storage: LocalStorage) -> None:
    response = _upload(api, b"\0" * (16 * 1024 * 1024 + 1))

    assert response.status_code == 413
    assert response.json()["code"] == "model_too_large"
    assert _stored_objects(api_storage) == []


def test_upload_without_a_file_part_is_a_clear_error(api: Any) -> None:
    response = api.post("/v1/models", data={"name": "x"}, files={"other": ("a.txt", b"1")})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_upload_that_is_neither_multipart_nor_json_is_415(api: Any) -> None:
    response = api.post("/v1/models", content=b"{}", headers={"content-type": "text/plain"})

    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_json_without_an_upload_id_is_422(api: Any) -> None:
    response = api.post("/v1/models", json={"name": "no upload"})

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_unknown_model_is_404_problem(api: Any) -> None:
    for path in ("/v1/models/nope", "/v1/models/nope/download"):
        response = api.get(path)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"


def test_zstd_download_decodes_to_the_model_and_matches_transport_size(
    api: Any, mlp_bytes: bytes
) -> None:
    import zstandard

    model = _upload(api, mlp_bytes).json()

    response = api.get(f"/v1/models/{model['id']}/download", params={"encoding": "zstd"})

    assert response.status_code == 200
    assert response.headers["content-disposition"].endswith('.onnx.zst"')
    assert zstandard.ZstdDecompressor().decompressobj().decompress(response.content) == mlp_bytes
    assert model["transport_size_bytes"] == len(response.content)


def test_unusual_unicode_names_are_stored_as_given(api: Any, mlp_bytes: bytes) -> None:
    name = "モデル 🚀 <script>alert(1)</script> " + "é" * 200

    model = _upload(api, mlp_bytes, name=name).json()

    assert api.get(f"/v1/models/{model['id']}").json()["name"] == name


@pytest.mark.parametrize("name", ["a\x00b", "line\nbreak", "x" * 256])
def test_names_with_control_characters_or_too_long_are_422(
    api: Any, mlp_bytes: bytes, name: str
) -> None:
    response = _upload(api, mlp_bytes, name=name)

    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


def test_ids_with_a_nul_character_are_a_client_error(api: Any) -> None:
    response = api.post("/v1/jobs", json={"model_id": "a\x00b", "preset": "fp16"})

    assert response.status_code in (404, 422)
    assert response.headers["content-type"].startswith("application/problem+json")
