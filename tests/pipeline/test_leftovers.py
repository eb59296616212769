"""The leftover sweep: what crashes leave (temp files, unreferenced stored objects, unfinished
uploads) goes once untouched for the grace period; what is in use or referenced stays."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.db import session_scope
from app.onnx_models.tables import ModelTable
from app.pipeline.leftovers import sweep_leftovers, sweep_temp_folder
from app.settings import Settings
from app.storage import LocalStorage, S3Storage, Storage
from tests.conftest import free_port
from tests.factories import add_model
from tests.stack import LiveStack

TWO_HOURS_AGO = time.time() - 7200


def _age(path: Path, when: float = TWO_HOURS_AGO) -> None:
    for entry in [*path.rglob("*"), path]:
        os.utime(entry, (when, when), follow_symlinks=False)


def _make(folder: Path, name: str, *, old: bool, as_dir: bool = False) -> Path:
    path = folder / name
    if as_dir:
        path.mkdir()
        (path / "model.onnx").write_bytes(b"x" * 100)
    else:
        path.write_bytes(b"x" * 100)
    if old:
        _age(path)
    return path


@pytest.fixture
def rows(database_url: str) -> Iterator[list[str]]:
    """Ids of model rows the test commits (the sweep reads the database on its own)."""
    ids: list[str] = []
    yield ids
    with session_scope() as session:
        for model_id in ids:
            if (row := session.get(ModelTable, model_id)) is not None:
                session.delete(row)


def _stored(storage: Storage, tmp_path: Path, key: str) -> None:
    source = tmp_path / "blob"
    source.write_bytes(os.urandom(64))
    storage.put_file(key, source)


def _begin_unfinished_upload(storage: Storage) -> None:
    if isinstance(storage, LocalStorage):
        (storage.root / "outputs").mkdir(parents=True, exist_ok=True)
        (storage.root / "outputs" / ".upload-crashed").write_bytes(b"x")
    else:
        assert isinstance(storage, S3Storage)
        storage.client.create_multipart_upload(Bucket=storage.bucket, Key=storage._key("o/m"))


def test_the_sweep_removes_old_leftovers_and_keeps_what_is_used(
    storage: Storage, tmp_path: Path, rows: list[str]
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    old_leftovers = [
        _make(temp, "upload-abc.part", old=True),
        _make(temp, "unpacked-abc", old=True, as_dir=True),
        _make(temp, "job-1234-abcd", old=True, as_dir=True),
        _make(temp, "bench-1234-abcd", old=True, as_dir=True),
        _make(temp, "modelpress-child-abcd", old=True, as_dir=True),
        _make(temp, "pre.quant.abcd", old=True, as_dir=True),
        _make(temp, "ort.quant.abcd", old=True, as_dir=True),
    ]
    kept = [
        _make(temp, "job-5678-fresh", old=False, as_dir=True),  # a job running now
        _make(temp, "someone-elses-file", old=True),  # not ours
    ]
    in_use = _make(temp, "bench-5678-busy", old=True, as_dir=True)
    (in_use / "result.json").write_text("{}")  # its files are still being written
    with session_scope() as session:
        for key in ("models/used/model.onnx", "outputs/used/job-x.onnx"):
            rows.append(add_model(session, storage_key=key).id)
            _stored(storage, tmp_path, key)
    orphans = ["models/orphan/model.onnx", "outputs/orphan/job-y.onnx", "datasets/o/data.npz"]
    for key in orphans:
        _stored(storage, tmp_path, key)  # stored just before a commit that never happened
    _begin_unfinished_upload(storage)
    time.sleep(2.5)
    _stored(storage, tmp_path, "models/young/model.onnx")  # its row is being committed now

    settings = Settings(leftover_grace_s=1.5, job_time_limit_s=60, upload_expiry_s=1.5)
    report = sweep_leftovers(settings, storage, folders=[temp])

    assert not [path.name for path in old_leftovers if path.exists()]
    assert all(path.exists() for path in [*kept, in_use])
    remaining = sorted(item.key for item in storage.list_objects(""))
    assert remaining == [
        "models/used/model.onnx", "models/young/model.onnx", "outputs/used/job-x.onnx",
    ]  # fmt: skip
    assert (report.temp_entries, report.stored_objects, report.multipart_uploads) == (7, 3, 1)


def test_an_upload_cut_off_by_an_api_crash_leaves_a_part_file_the_sweep_removes(
    live_stack: LiveStack, tmp_path: Path
) -> None:
    api = LiveStack(env=live_stack.env, log_dir=tmp_path, port=free_port())
    api.start_api()
    boundary = "leftover-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", api.port)) as upload:
        upload.sendall(
            f"POST /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {live_stack.api_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(head) + 10_000_000}\r\n\r\n".encode()
            + head
            + os.urandom(1_000_000)
        )
        deadline = time.monotonic() + 30
        while not list(api.tmp_dir.glob("upload-*.part")):
            assert time.monotonic() < deadline, "the upload never reached the spool"
            time.sleep(0.1)
        api.kill("api")  # mid-upload: no cleanup runs
    left = list(api.tmp_dir.glob("upload-*.part"))

    removed = sweep_temp_folder(api.tmp_dir, datetime.now(UTC))

    assert len(left) == 1 and removed == 1
    assert not left[0].exists()
