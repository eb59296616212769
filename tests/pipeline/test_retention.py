"""Retention deletes old rows with their files, never what an active job uses; a job that ends
canceled keeps no output."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from app.db import session_scope, utcnow
from app.jobs.tables import JobTable
from app.onnx_models.tables import ModelTable
from app.pipeline.retention import sweep_retention
from app.pipeline.stopping import drop_output_if_unsuccessful
from app.settings import Settings
from app.storage import LocalStorage
from app.storage.objects import content_key
from tests.factories import add_job, add_model


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "storage")


@pytest.fixture
def cleanup(database_url: str) -> Iterator[list[str]]:
    ids: list[str] = []
    yield ids
    with session_scope() as session:
        for table in (JobTable, ModelTable):
            for row_id in ids:
                if (row := session.get(table, row_id)) is not None:
                    session.delete(row)


def _stored_model(
    storage: LocalStorage, cleanup: list[str], *, days_old: float, **extra: str
) -> str:
    blob = os.urandom(64)
    key = content_key(hashlib.sha256(blob).hexdigest(), "onnx")
    path = storage.root / "blob"
    path.write_bytes(blob)
    storage.put_file(key, path)
    with session_scope() as session:
        created = utcnow() - timedelta(days=days_old)
        model = add_model(session, storage_key=key, created_at=created, **extra)
        cleanup.append(model.id)
        return model.id


def _key_of(model_id: str) -> str:
    with session_scope() as session:
        row = session.get(ModelTable, model_id)
        assert row is not None
        return row.storage_key


def test_retention_removes_old_rows_and_objects_but_not_what_an_active_job_uses(
    storage: LocalStorage, cleanup: list[str]
) -> None:
    old, busy, young = (_stored_model(storage, cleanup, days_old=d) for d in (3, 3, 0.5))
    keys = {
        name: _key_of(model_id)
        for name, model_id in [("old", old), ("busy", busy), ("young", young)]
    }
    with session_scope() as session:
        busy_row = session.get(ModelTable, busy)
        assert busy_row is not None
        cleanup.append(add_job(session, busy_row, status="running").id)
        old_job = add_job(session, busy_row, status="succeeded")
        old_job.created_at = utcnow() - timedelta(days=3)
        cleanup.append(old_job.id)

    assert sweep_retention(Settings(retention_days=0), storage, utcnow()).models == 0
    report = sweep_retention(Settings(retention_days=1), storage, utcnow())

    assert report.models == 1 and report.jobs >= 1
    with session_scope() as session:
        assert session.get(ModelTable, old) is None
        assert session.get(ModelTable, busy) is not None and session.get(ModelTable, young)
        assert session.get(JobTable, old_job.id) is None
    assert not storage.exists(keys["old"])
    assert storage.exists(keys["busy"]) and storage.exists(keys["young"])


def test_a_canceled_job_keeps_no_output(storage: LocalStorage, cleanup: list[str]) -> None:
    source = _stored_model(storage, cleanup, days_old=0)
    with session_scope() as session:
        source_row = session.get(ModelTable, source)
        assert source_row is not None
        job = add_job(session, source_row, status="canceled")
        cleanup.append(job.id)
    output = _stored_model(storage, cleanup, days_old=0, job_id=job.id, parent_id=source)
    key = _key_of(output)

    drop_output_if_unsuccessful(job.id, storage)

    with session_scope() as session:
        assert session.get(ModelTable, output) is None
    assert not storage.exists(key) and storage.exists(_key_of(source))
