"""Models named in any script download under their own name (RFC 6266 `filename*`), plain, zstd,
as a job's output, and through a presigned S3 redirect."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import zstandard

from app.main import app
from app.settings import Settings, get_settings
from app.storage import S3Storage, get_storage
from tests.builders import build_mlp
from tests.conftest import make_bucket
from tests.stack import LiveStack

NAMES = ["模型", "نموذج٣", "ﬁne-tuned"]


@pytest.fixture(scope="module")
def mlp_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_mlp(tmp_path_factory.mktemp("names") / "mlp.onnx", sizes=(16, 8)).read_bytes()


def _name_in(disposition: str) -> str:
    """The file name a browser saves under: `filename*` when present (RFC 6266), else `filename`."""
    params = dict(part.strip().split("=", 1) for part in disposition.split(";")[1:])
    assert params["filename"].isascii()
    if "filename*" in params:
        charset, _, quoted = params["filename*"].split("'", 2)
        assert charset == "UTF-8"
        return unquote(quoted, encoding="utf-8")
    return params["filename"].strip('"')


def _check_downloads(client: httpx.Client, model_id: str, name: str, content: bytes) -> None:
    plain = client.get(f"/v1/models/{model_id}/download")
    assert plain.status_code == 200, plain.text
    assert plain.content == content
    assert _name_in(plain.headers["content-disposition"]) == f"{name}.onnx"

    packed = client.get(f"/v1/models/{model_id}/download", params={"encoding": "zstd"})
    assert packed.status_code == 200, packed.text
    assert zstandard.ZstdDecompressor().decompressobj().decompress(packed.content) == content
    assert _name_in(packed.headers["content-disposition"]) == f"{name}.onnx.zst"


@pytest.mark.parametrize("name", NAMES)
def test_a_model_named_in_any_script_downloads_under_its_name(
    live_stack: LiveStack, mlp_bytes: bytes, name: str
) -> None:
    with live_stack.client() as client:
        model = client.post(
            "/v1/models", files={"file": ("m.onnx", mlp_bytes)}, data={"name": name}
        )
        assert model.status_code == 201, model.text

        _check_downloads(client, model.json()["id"], name, mlp_bytes)


def test_the_output_of_a_model_with_such_a_name_downloads(
    live_stack: LiveStack, mlp_bytes: bytes
) -> None:
    with live_stack.client() as client:
        model = client.post(
            "/v1/models", files={"file": ("m.onnx", mlp_bytes)}, data={"name": "模型"}
        ).json()
        submitted = client.post(
            "/v1/jobs", json={"model_id": model["id"], "preset": "fp16", "benchmark": {"runs": 1}}
        )
        assert submitted.status_code == 202, submitted.text
        job = live_stack.wait_for_job(client, submitted.json()["id"])
        assert job["status"] == "succeeded", job["error"]
        output = client.get(f"/v1/models/{job['output_model_id']}").json()
        content = client.get(f"/v1/models/{output['id']}/download").content

        assert output["name"] == "模型-compressed"
        _check_downloads(client, output["id"], output["name"], content)


@pytest.fixture
def presigning_api(api: Any, s3_endpoint: str) -> Iterator[Any]:
    """The in-process API on S3 over HTTP with presigned downloads on."""
    make_bucket(s3_endpoint, "presign-names")
    storage = S3Storage(bucket="presign-names", endpoint_url=s3_endpoint, region="us-east-1")
    app.dependency_overrides[get_storage] = lambda: storage
    app.dependency_overrides[get_settings] = lambda: Settings(presign_downloads=True)
    yield api


def test_a_presigned_download_keeps_the_name(presigning_api: Any, mlp_bytes: bytes) -> None:
    model = presigning_api.post(
        "/v1/models", files={"file": ("m.onnx", mlp_bytes)}, data={"name": "模型"}
    ).json()

    redirect = presigning_api.get(f"/v1/models/{model['id']}/download", follow_redirects=False)
    assert redirect.status_code == 307, redirect.text
    fetched = httpx.get(redirect.headers["location"], timeout=30)

    assert fetched.status_code == 200
    assert fetched.content == mlp_bytes
    assert _name_in(fetched.headers["content-disposition"]) == "模型.onnx"
