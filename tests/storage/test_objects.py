"""Content-addressed objects: the same bytes are stored once, and freed with their last row."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from app.db import session_scope
from app.storage import LocalStorage
from app.storage.objects import content_key, free_object, store_object
from app.storage.references import lock_object
from tests.builders import build_mlp


@pytest.fixture(scope="module")
def mlp_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_mlp(tmp_path_factory.mktemp("m") / "mlp.onnx", sizes=(24, 40, 8)).read_bytes()


def _files(storage: LocalStorage) -> list[str]:
    return sorted(
        p.relative_to(storage.root).as_posix() for p in storage.root.rglob("*") if p.is_file()
    )


def test_same_bytes_twice_are_one_object_freed_with_the_last_model(
    committed_api: Any,
    committed_storage: LocalStorage,
    mlp_bytes: bytes,
) -> None:
    upload = {"file": ("mlp.onnx", mlp_bytes)}
    first = committed_api.post("/v1/models", files=upload).json()
    second = committed_api.post("/v1/models", files=upload, data={"name": "again"}).json()
    key = content_key(hashlib.sha256(mlp_bytes).hexdigest(), "onnx")

    assert first["id"] != second["id"]
    assert _files(committed_storage) == [key]

    assert committed_api.delete(f"/v1/models/{first['id']}").status_code == 204
    assert _files(committed_storage) == [key]
    assert committed_api.get(f"/v1/models/{second['id']}/download").content == mlp_bytes

    assert committed_api.delete(f"/v1/models/{second['id']}").status_code == 204
    assert _files(committed_storage) == []


def test_an_object_being_stored_is_not_freed_and_is_stored_again_if_freed_first(
    database_url: str, tmp_path: Path
) -> None:
    storage = LocalStorage(tmp_path / "storage")
    source = tmp_path / "blob"
    source.write_bytes(b"same bytes")
    key = content_key(hashlib.sha256(b"same bytes").hexdigest(), "onnx")
    storage.put_file(key, source)

    with session_scope() as uploader:
        lock_object(uploader, key)  # an upload of the same bytes, between its lock and commit
        assert free_object(storage, key) is False
        assert storage.exists(key)

    assert free_object(storage, key) is True  # no row names it, nobody holds it
    assert not storage.exists(key)

    with session_scope() as uploader:
        storage.put_file(key, source)
        storage.delete(key)  # a remover's delete lands between the upload and the lock
        store_object(uploader, storage, key, source)
        assert storage.exists(key)
        uploader.rollback()  # its row never commits: the object is freed again
    assert not storage.exists(key)
