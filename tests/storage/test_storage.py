"""Both storage backends keep, stream, size, presign and delete objects the same way."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
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


def test_listing_gives_the_keys_sizes_and_times_under_a_prefix(
    storage: Storage, tmp_path: Path
) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    storage.put_file("models/a/model.onnx", _file(tmp_path, 10))
    storage.put_file("models/b/model.zip", _file(tmp_path, 20))
    storage.put_file("outputs/x/y.onnx", _file(tmp_path, 30))

    listed = {item.key: item for item in storage.list_objects("models/")}

    assert set(listed) == {"models/a/model.onnx", "models/b/model.zip"}
    assert listed["models/b/model.zip"].size == 20
    after = datetime.now(UTC) + timedelta(seconds=5)
    assert all(before < item.modified < after for item in listed.values())
    assert [item.key for item in storage.list_objects("outputs/")] == ["outputs/x/y.onnx"]
    assert list(storage.list_objects("datasets/")) == []


def _begin_unfinished_upload(storage: Storage, key: str) -> None:
    """What a process killed mid-upload leaves: an S3 multipart upload never completed, or a
    local copy never renamed into place."""
    if isinstance(storage, LocalStorage):
        partial = storage.root / key
        partial.parent.mkdir(parents=True, exist_ok=True)
        partial.with_name(".upload-crashed").write_bytes(os.urandom(1000))
        return
    assert isinstance(storage, S3Storage)
    s3_key = storage._key(key)
    started = storage.client.create_multipart_upload(Bucket=storage.bucket, Key=s3_key)
    storage.client.upload_part(
        Bucket=storage.bucket, Key=s3_key, UploadId=started["UploadId"], PartNumber=1,
        Body=os.urandom(1000),
    )  # fmt: skip


def _unfinished_uploads(storage: Storage) -> int:
    if isinstance(storage, LocalStorage):
        return len(list(storage.root.rglob(".upload-*")))
    assert isinstance(storage, S3Storage)
    listed = storage.client.list_multipart_uploads(Bucket=storage.bucket)
    return len(listed.get("Uploads", []))


def test_unfinished_uploads_older_than_the_cutoff_are_dropped(
    storage: Storage, tmp_path: Path
) -> None:
    _begin_unfinished_upload(storage, "outputs/big/model.onnx")
    storage.put_file("models/a/model.onnx", _file(tmp_path, 10))

    # A cutoff before the upload began keeps it (moto dates every upload in 2010, hence 2000).
    kept = storage.abort_stale_multipart(datetime(2000, 1, 1, tzinfo=UTC))
    unfinished_before = _unfinished_uploads(storage)
    dropped = storage.abort_stale_multipart(datetime.now(UTC) + timedelta(minutes=1))

    assert (kept, unfinished_before) == (0, 1)
    assert dropped == 1 and _unfinished_uploads(storage) == 0
    assert [item.key for item in storage.list_objects("")] == ["models/a/model.onnx"]
