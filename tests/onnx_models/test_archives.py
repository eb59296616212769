"""Models with external data arrive as a .zip; hostile archives are refused and leave nothing."""

from __future__ import annotations

import io
import stat
import zipfile
from pathlib import Path
from typing import Any

import onnx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.onnx_models.tables import ModelTable
from app.storage import LocalStorage
from tests.builders import build_mlp


def _zip(entries: dict[str, bytes], *, symlink: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        if symlink is not None:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def external_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """model.onnx plus model.onnx.data, as a large export is written."""
    folder = tmp_path_factory.mktemp("external")
    model = onnx.load(str(build_mlp(folder / "plain.onnx", sizes=(32, 64, 8))))
    onnx.save_model(
        model,
        str(folder / "model.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    return {name: (folder / name).read_bytes() for name in ("model.onnx", "model.onnx.data")}


def _upload(api: Any, content: bytes) -> Any:
    return api.post("/v1/models", files={"file": ("model.zip", content)})


def test_a_zip_with_external_data_is_accepted_and_downloaded_as_sent(
    api: Any, external_model: dict[str, bytes]
) -> None:
    content = _zip(external_model)

    response = _upload(api, content)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["packaging"] == "zip"
    assert body["param_count"] == 32 * 64 + 64 + 64 * 8 + 8
    download = api.get(f"/v1/models/{body['id']}/download")
    assert download.content == content
    assert download.headers["content-disposition"].endswith('.zip"')


def _bomb() -> bytes:
    return _zip({"model.onnx": b"\0" * (64 * 1024 * 1024)})  # inflates ~1000x


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda m: _zip({"../model.onnx": m["model.onnx"]}), "unsafe_archive"),
        (lambda m: _zip({"/abs/model.onnx": m["model.onnx"]}), "unsafe_archive"),
        (lambda m: _zip(m, symlink="weights.bin"), "unsafe_archive"),
        (lambda m: _bomb(), "unsafe_archive"),
        (lambda m: _zip({"a.onnx": m["model.onnx"], "b.onnx": m["model.onnx"]}), "invalid_model"),
        (lambda m: _zip({"readme.txt": b"no model here"}), "invalid_model"),
        (lambda m: _zip({"model.onnx": m["model.onnx"]}), "invalid_model"),  # data file missing
    ],
    ids=[
        "dotdot-entry",
        "absolute-entry",
        "symlink-entry",
        "zip-bomb",
        "two-models",
        "no-model",
        "missing-external-data",
    ],
)
def test_hostile_or_broken_archives_are_refused_and_leave_nothing(
    api: Any, api_storage: LocalStorage, db_session: Session,
    external_model: dict[str, bytes], make: Any, code: str,
) -> None:  # fmt: skip
    response = _upload(api, make(external_model))

    assert response.status_code == 422
    assert response.json()["code"] == code
    assert [p for p in Path(api_storage.root).rglob("*") if p.is_file()] == []
    assert db_session.scalar(select(func.count()).select_from(ModelTable)) == 0
