"""Direct uploads on the live stack (S3 over HTTP): with the threshold at 0 every model goes by
POST /v1/uploads, a PUT to the presigned URL and POST /v1/models {"upload_id"}."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from modelpress_sdk import ApiError, Client

from tests.builders import build_mlp
from tests.stack import LiveStack


def test_a_model_uploaded_directly_is_stored_and_compressed(
    live_stack: LiveStack, tmp_path: Path
) -> None:
    model_path = build_mlp(tmp_path / "mlp.onnx")
    with Client(live_stack.url, live_stack.api_key, direct_upload_threshold_bytes=0) as mp:
        model = mp.upload_model(model_path, name="direct")
        job = mp.compress(model, preset="int8-dynamic", benchmark={"runs": 5}).wait(timeout=240)
        again = mp.download_model(model, tmp_path / "again.onnx")

    assert model.name == "direct" and model.size_bytes == model_path.stat().st_size
    assert model.sha256 == hashlib.sha256(model_path.read_bytes()).hexdigest()
    assert again.read_bytes() == model_path.read_bytes()
    assert job.status == "succeeded" and job.output_model_id


def test_a_direct_upload_too_large_is_refused_before_any_byte_is_sent(
    live_stack: LiveStack, tmp_path: Path
) -> None:
    big = tmp_path / "big.onnx"
    with big.open("wb") as fh:  # sparse: the size is what POST /v1/uploads judges
        fh.truncate(64 * 1024 * 1024)
    with (
        Client(live_stack.url, live_stack.api_key, direct_upload_threshold_bytes=0) as mp,
        pytest.raises(ApiError) as raised,
    ):
        mp.upload_model(big)

    assert (raised.value.status, raised.value.code) == (413, "model_too_large")
