"""Direct uploads: PUT to the URL answered (S3 presigned, or the API itself on local storage),
then POST /v1/models as JSON registers the same model a multipart upload would."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from app.settings import Settings, get_settings
from app.storage import LocalStorage, S3Storage, get_storage
from app.storage.objects import content_key
from tests.builders import build_mlp
from tests.conftest import make_bucket

PART_BYTES = 5 * 1024 * 1024  # S3's smallest part
SAME_FIELDS = (
    "name", "sha256", "size_bytes", "format", "packaging", "ir_version", "opset", "producer",
    "inputs", "outputs", "op_counts", "param_count", "transport_size_bytes",
)  # fmt: skip


@pytest.fixture(scope="module")
def mlp_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_mlp(tmp_path_factory.mktemp("m") / "mlp.onnx", sizes=(32, 64, 8)).read_bytes()


@pytest.fixture(scope="module")
def big_mlp_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """About 11 MiB: three parts of 5 MiB."""
    path = tmp_path_factory.mktemp("m") / "big.onnx"
    return build_mlp(path, sizes=(1024, 2800, 8)).read_bytes()


@pytest.fixture
def s3_api(api: Any, s3_endpoint: str, request: pytest.FixtureRequest) -> Iterator[S3Storage]:
    """The in-process API on S3 over HTTP (moto), with parts of 5 MiB."""
    bucket = f"uploads-{request.node.name.lower().replace('_', '-')}"[:60].strip("-")
    make_bucket(s3_endpoint, bucket)
    storage = S3Storage(bucket=bucket, prefix="mp", endpoint_url=s3_endpoint, region="us-east-1")
    settings = Settings(max_upload_bytes=16 * 1024 * 1024, upload_part_bytes=PART_BYTES)
    api.app.dependency_overrides[get_storage] = lambda: storage
    api.app.dependency_overrides[get_settings] = lambda: settings
    yield storage


def _begin(api: Any, size: int, filename: str = "mlp.onnx") -> Any:
    return api.post("/v1/uploads", json={"filename": filename, "size_bytes": size})


def _register(api: Any, upload_id: str, **extra: str) -> Any:
    return api.post("/v1/models", json={"upload_id": upload_id, **extra})


def _same_model(direct: dict[str, Any], multipart: dict[str, Any]) -> None:
    assert {f: direct[f] for f in SAME_FIELDS} == {f: multipart[f] for f in SAME_FIELDS}


def _put_local(api: Any, upload: dict[str, Any], content: bytes) -> Any:
    # No API key: the token in the URL authorises the PUT, like a presigned URL.
    key = api.headers.pop("Authorization")
    try:
        return api.put(upload["url"], content=content, headers=upload["headers"])
    finally:
        api.headers["Authorization"] = key


def test_local_upload_through_the_api_registers_the_same_model_as_multipart(
    api: Any, api_storage: LocalStorage, mlp_bytes: bytes
) -> None:
    upload = _begin(api, len(mlp_bytes)).json()
    assert upload["parts"] == [] and upload["method"] == "PUT"
    assert upload["url"].startswith(f"http://testserver/v1/uploads/{upload['upload_id']}/content")

    assert _put_local(api, upload, mlp_bytes).status_code == 204
    direct = _register(api, upload["upload_id"])
    multipart = api.post("/v1/models", files={"file": ("mlp.onnx", mlp_bytes)})

    assert direct.status_code == 201, direct.text
    assert direct.headers["location"] == f"/v1/models/{direct.json()['id']}"
    _same_model(direct.json(), multipart.json())
    assert api.get(f"/v1/models/{direct.json()['id']}/download").content == mlp_bytes
    # One object for both, and nothing staged any more.
    key = content_key(hashlib.sha256(mlp_bytes).hexdigest(), "onnx")
    assert [p.relative_to(api_storage.root).as_posix() for p in api_storage.root.rglob("*")
            if p.is_file()] == [key]  # fmt: skip


def test_reuse_wrong_token_unknown_and_incomplete_uploads(api: Any, mlp_bytes: bytes) -> None:
    upload = _begin(api, len(mlp_bytes)).json()

    assert _register(api, upload["upload_id"]).json()["code"] == "upload_incomplete"
    bad = {**upload, "url": upload["url"].split("token=")[0] + "token=forged"}
    assert _put_local(api, bad, mlp_bytes).status_code == 401
    assert _put_local(api, upload, mlp_bytes).status_code == 204
    assert _register(api, upload["upload_id"], name="first").status_code == 201

    again = _register(api, upload["upload_id"])
    assert (again.status_code, again.json()["code"]) == (409, "upload_already_used")
    assert _put_local(api, upload, mlp_bytes).status_code == 409
    unknown = _register(api, "no-such-upload")
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")


def test_bad_filename_and_oversize_are_refused_up_front(api: Any) -> None:
    bad_name = _begin(api, 100, filename="model.pt")
    too_big = _begin(api, 17 * 1024 * 1024)

    assert (bad_name.status_code, bad_name.json()["code"]) == (415, "unsupported_media_type")
    assert (too_big.status_code, too_big.json()["code"]) == (413, "model_too_large")


def test_a_broken_model_is_the_same_422_as_multipart_and_leaves_nothing(
    api: Any, api_storage: LocalStorage
) -> None:
    broken = b"\x08\x07" + b"not an onnx graph" * 50
    upload = _begin(api, len(broken)).json()
    assert _put_local(api, upload, broken).status_code == 204

    direct = _register(api, upload["upload_id"])
    multipart = api.post("/v1/models", files={"file": ("mlp.onnx", broken)})

    assert direct.status_code == multipart.status_code == 422
    assert direct.json()["code"] == multipart.json()["code"] == "invalid_model"
    assert [p for p in api_storage.root.rglob("*") if p.is_file()] == []
    assert _register(api, upload["upload_id"]).json()["code"] == "upload_already_used"


def test_s3_single_put_registers_the_same_model_as_multipart(
    api: Any, s3_api: S3Storage, mlp_bytes: bytes
) -> None:
    upload = _begin(api, len(mlp_bytes)).json()
    assert upload["parts"] == [] and upload["url"].startswith(s3_api.client.meta.endpoint_url)

    put = httpx.put(upload["url"], content=mlp_bytes, headers=upload["headers"])
    assert put.status_code == 200, put.text
    direct = _register(api, upload["upload_id"])
    multipart = api.post("/v1/models", files={"file": ("mlp.onnx", mlp_bytes)})

    assert direct.status_code == 201, direct.text
    _same_model(direct.json(), multipart.json())
    keys = sorted(o.key for o in s3_api.list_objects(""))
    assert keys == [content_key(hashlib.sha256(mlp_bytes).hexdigest(), "onnx")]


def test_s3_multipart_upload_registers_the_same_model_as_multipart(
    api: Any, s3_api: S3Storage, big_mlp_bytes: bytes
) -> None:
    upload = _begin(api, len(big_mlp_bytes)).json()
    assert upload["url"] is None
    assert [p["size_bytes"] for p in upload["parts"]] == [
        PART_BYTES, PART_BYTES, len(big_mlp_bytes) - 2 * PART_BYTES,
    ]  # fmt: skip

    etags, offset = [], 0
    for part in upload["parts"]:
        chunk = big_mlp_bytes[offset : offset + part["size_bytes"]]
        offset += part["size_bytes"]
        answer = httpx.put(part["url"], content=chunk)
        assert answer.status_code == 200, answer.text
        etags.append({"part_number": part["part_number"], "etag": answer.headers["etag"]})
    assert _register(api, upload["upload_id"]).json()["code"] == "upload_incomplete"
    done = api.post(f"/v1/uploads/{upload['upload_id']}/complete", json={"parts": etags})
    assert done.json() == {"upload_id": upload["upload_id"], "size_bytes": len(big_mlp_bytes)}

    direct = _register(api, upload["upload_id"], name="big")
    multipart = api.post(
        "/v1/models", files={"file": ("mlp.onnx", big_mlp_bytes)}, data={"name": "big"}
    )

    assert direct.status_code == 201, direct.text
    _same_model(direct.json(), multipart.json())
    assert not list(s3_api.list_objects("uploads/"))
