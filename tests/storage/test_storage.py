"""Both storage backends keep, stream, size, presign and delete objects the same way."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from app.storage import LocalStorage, S3Storage, Storage, StorageError, storage_for_url


def _file(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "blob.bin"
    path.write_bytes(os.urandom(size))
    return path


def test_put_then_read_back_the_same_bytes(storage: Storage, tmp_path: Path) -> None:
    source = _file(tmp_path, 3 * 1024 * 1024 + 17)

    storage.put_file("models/a/model.onnx", source)

    assert storage.exists("models/a/model.onnx")
    assert storage.size("models/a/model.onnx") == source.stat().st_size
    copy = tmp_path / "copy.bin"
    storage.download_to("models/a/model.onnx", copy)
    assert copy.read_bytes() == source.read_bytes()


def test_delete_removes_and_is_idempotent(storage: Storage, tmp_path: Path) -> None:
    storage.put_file("k", _file(tmp_path, 10))

    storage.delete("k")
    storage.delete("k")

    assert not storage.exists("k")
    with pytest.raises(StorageError):
        storage.open("k")


def test_missing_object_is_a_storage_error(storage: Storage) -> None:
    with pytest.raises(StorageError):
        storage.size("nothing/here")


def test_ping_succeeds_on_a_reachable_backend(storage: Storage) -> None:
    storage.ping()


def test_s3_presigned_url_serves_the_object(s3_endpoint: str, tmp_path: Path) -> None:
    from tests.conftest import make_bucket

    make_bucket(s3_endpoint, "presign-test")
    storage = S3Storage(bucket="presign-test", endpoint_url=s3_endpoint, region="us-east-1")
    source = _file(tmp_path, 1000)
    storage.put_file("x/model.onnx", source)

    url = storage.presign("x/model.onnx", expires_s=60)

    assert url is not None
    assert httpx.get(url).content == source.read_bytes()


def test_s3_unreachable_bucket_fails_ping(s3_endpoint: str) -> None:
    storage = S3Storage(bucket="no-such-bucket", endpoint_url=s3_endpoint, region="us-east-1")

    with pytest.raises(StorageError):
        storage.ping()


def test_local_keys_cannot_escape_the_root(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "root")

    with pytest.raises(StorageError):
        storage.put_file("../outside", _file(tmp_path, 1))


def test_backend_is_chosen_by_url_scheme(tmp_path: Path) -> None:
    assert isinstance(storage_for_url(tmp_path.as_uri()), LocalStorage)
    s3 = storage_for_url("s3://bucket/some/prefix", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3Storage)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    with pytest.raises(ValueError, match="unsupported"):
        storage_for_url("ftp://host/x")
