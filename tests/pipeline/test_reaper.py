"""The reaper: a running job whose worker vanished is requeued, or failed with `worker_lost`
after its last attempt; a failed job keeps no output model, like any unsuccessful ending."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import delete

from app.db import session_scope, utcnow
from app.jobs.tables import JobTable
from app.onnx_models.tables import ModelTable
from app.pipeline.reaper import reap_lost_jobs
from app.settings import Settings
from app.storage import get_storage
from tests.factories import add_job, add_model

SETTINGS = Settings(heartbeat_timeout_s=5, max_attempts=2)


@pytest.fixture
def tenant_id(database_url: str) -> Iterator[str]:
    """A tenant of the test's own; its rows are committed (the reaper reads on its own)."""
    tenant_id = f"reap-{uuid.uuid4().hex[:8]}"
    yield tenant_id
    with session_scope() as session:
        session.execute(delete(JobTable).where(JobTable.tenant_id == tenant_id))
        session.execute(delete(ModelTable).where(ModelTable.tenant_id == tenant_id))


def _lost_job_with_output(tenant_id: str, tmp_path: Path, *, attempts: int) -> tuple[str, str, str]:
    """(job id, output model id, output storage key): a running job silent for a minute that
    had already recorded its output model, whose file is stored."""
    key = f"models/{tenant_id}/output.onnx"
    source = tmp_path / "output.onnx"
    source.write_bytes(os.urandom(128))
    get_storage().put_file(key, source)
    with session_scope() as session:
        source_model = add_model(session, tenant_id=tenant_id)
        job = add_job(
            session, source_model, tenant_id=tenant_id, status="running", stage="benchmark",
            attempts=attempts, started_at=utcnow(), heartbeat_at=utcnow() - timedelta(minutes=1),
        )  # fmt: skip
        output = add_model(session, tenant_id=tenant_id, storage_key=key, job_id=job.id)
        return job.id, output.id, key


def test_a_job_failed_as_worker_lost_loses_its_recorded_output(
    tenant_id: str, tmp_path: Path
) -> None:
    job_id, output_id, key = _lost_job_with_output(tenant_id, tmp_path, attempts=2)

    swept = reap_lost_jobs(SETTINGS)

    with session_scope() as session:
        job = session.get(JobTable, job_id)
        assert job is not None
        assert (job.status, job.error and job.error["code"]) == ("failed", "worker_lost")
        assert session.get(ModelTable, output_id) is None
    assert swept["failed"] >= 1
    assert not get_storage().exists(key)


def test_a_requeued_job_keeps_its_output_for_the_next_attempt(
    tenant_id: str, tmp_path: Path
) -> None:
    job_id, output_id, key = _lost_job_with_output(tenant_id, tmp_path, attempts=1)

    reap_lost_jobs(SETTINGS)

    with session_scope() as session:
        job = session.get(JobTable, job_id)
        assert job is not None and job.status == "queued"
        assert session.get(ModelTable, output_id) is not None
    assert get_storage().exists(key)
    get_storage().delete(key)
