"""Uploaded models are checked a bounded number at a time: past the wait, a 503 to retry."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.onnx_models.tables import ModelTable
from app.onnx_models.validation import validation_slots
from app.settings import get_settings
from app.storage import LocalStorage
from tests.builders import build_mlp


def test_an_upload_finding_every_check_slot_taken_is_503_then_goes_through(
    api: Any,
    api_storage: LocalStorage,
    db_session: Session,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    settings = get_settings()
    monkeypatch.setattr(settings, "validation_wait_s", 0.2)
    content = build_mlp(tmp_path / "m.onnx", sizes=(8, 4)).read_bytes()
    slots = validation_slots(settings.max_concurrent_validations)
    # Other uploads are being checked: every slot is held.
    for _ in range(settings.max_concurrent_validations):
        assert slots.acquire(timeout=5)
    try:
        busy = api.post("/v1/models", files={"file": ("m.onnx", content)})
    finally:
        for _ in range(settings.max_concurrent_validations):
            slots.release()

    assert busy.status_code == 503
    assert busy.json()["code"] == "service_busy"
    assert int(busy.headers["retry-after"]) > 0
    assert [p for p in api_storage.root.rglob("*") if p.is_file()] == []
    assert db_session.scalar(select(func.count()).select_from(ModelTable)) == 0
    assert api.post("/v1/models", files={"file": ("m.onnx", content)}).status_code == 201
