"""Idempotency-Key on creating POSTs: a retry gets the first answer and makes nothing new."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.datasets.tables import DatasetTable
from app.db import utcnow
from app.idempotency.tables import IdempotencyKeyTable
from app.jobs.tables import JobTable
from app.onnx_models.tables import ModelTable
from tests.builders import build_mlp
from tests.conftest import issue_key
from tests.factories import add_model
from tests.stack import LiveStack


def _key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


def _count(session: Session, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table).filter_by(**where)
    return int(session.scalar(query) or 0)


@pytest.fixture
def model_id(db_session: Session) -> str:
    return add_model(db_session).id


@pytest.fixture(scope="module")
def mlp_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_mlp(tmp_path_factory.mktemp("m") / "mlp.onnx", sizes=(16, 32, 4)).read_bytes()


def test_a_retried_job_submit_returns_the_first_job_and_makes_no_second(
    api: Any, db_session: Session, model_id: str
) -> None:
    headers = _key()
    body = {"model_id": model_id, "preset": "int8-dynamic"}

    first = api.post("/v1/jobs", json=body, headers=headers)
    # The same body with other key order and spacing is the same request.
    retry = api.post(
        "/v1/jobs",
        content=b'{ "preset": "int8-dynamic",  "model_id": "' + model_id.encode() + b'" }',
        headers={**headers, "Content-Type": "application/json"},
    )

    assert first.status_code == retry.status_code == 202
    assert retry.json() == first.json()
    assert retry.headers["location"] == first.headers["location"]
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _count(db_session, JobTable, model_id=model_id) == 1


def test_the_same_key_with_another_body_is_refused(api: Any, model_id: str) -> None:
    headers = _key()
    api.post("/v1/jobs", json={"model_id": model_id, "preset": "int8-dynamic"}, headers=headers)

    reused = api.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16"}, headers=headers)
    elsewhere = api.post("/v1/benchmarks", json={"model_id": model_id}, headers=headers)

    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"
    assert reused.headers["content-type"].startswith("application/problem+json")
    assert elsewhere.status_code == 422
    assert elsewhere.json()["code"] == "idempotency_key_reused"


def test_another_tenant_uses_the_same_key_on_its_own(
    api: Any, db_session: Session, model_id: str
) -> None:
    headers = _key()
    other_model = add_model(db_session, tenant_id="idem-other").id
    other = {**headers, "Authorization": f"Bearer {issue_key(db_session, 'idem-other')}"}

    mine = api.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16"}, headers=headers)
    theirs = api.post("/v1/jobs", json={"model_id": other_model, "preset": "fp16"}, headers=other)

    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]
    assert "idempotent-replayed" not in theirs.headers


def test_a_refused_request_frees_its_key(api: Any, db_session: Session, model_id: str) -> None:
    headers = _key()

    invalid = api.post("/v1/jobs", json={"model_id": model_id}, headers=headers)
    missing = api.post("/v1/jobs", json={"model_id": "nope", "preset": "fp16"}, headers=headers)
    created = api.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16"}, headers=headers)

    assert invalid.status_code == 422 and invalid.json()["code"] != "idempotency_key_reused"
    assert missing.status_code == 404
    assert created.status_code == 202
    assert "idempotent-replayed" not in created.headers
    assert _count(db_session, JobTable, model_id=model_id) == 1


def test_without_a_key_every_submit_makes_a_job(
    api: Any, db_session: Session, model_id: str
) -> None:
    body = {"model_id": model_id, "preset": "fp16"}

    ids = {api.post("/v1/jobs", json=body).json()["id"] for _ in range(2)}

    assert len(ids) == 2
    assert _count(db_session, IdempotencyKeyTable) == 0


def test_a_key_older_than_a_day_is_forgotten(api: Any, db_session: Session, model_id: str) -> None:
    headers = _key()
    body = {"model_id": model_id, "preset": "fp16"}
    first = api.post("/v1/jobs", json=body, headers=headers).json()
    db_session.execute(
        update(IdempotencyKeyTable).values(created_at=utcnow() - timedelta(hours=25))
    )

    again = api.post("/v1/jobs", json=body, headers=headers)

    assert again.status_code == 202
    assert again.json()["id"] != first["id"]


def test_a_retried_benchmark_returns_the_first_job(api: Any, model_id: str) -> None:
    headers = _key()

    first = api.post("/v1/benchmarks", json={"model_id": model_id}, headers=headers)
    retry = api.post("/v1/benchmarks", json={"model_id": model_id}, headers=headers)

    assert first.status_code == retry.status_code == 202
    assert retry.json()["id"] == first.json()["id"]


def test_a_retried_model_upload_creates_one_model(
    api: Any, db_session: Session, mlp_bytes: bytes
) -> None:
    headers = _key()
    files = {"file": ("mlp.onnx", mlp_bytes)}
    before = _count(db_session, ModelTable)

    first = api.post("/v1/models", files=files, data={"name": "idem"}, headers=headers)
    retry = api.post("/v1/models", files=files, data={"name": "idem"}, headers=headers)
    renamed = api.post("/v1/models", files=files, data={"name": "other"}, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["location"] == f"/v1/models/{first.json()['id']}"
    assert retry.headers["idempotent-replayed"] == "true"
    assert _count(db_session, ModelTable) == before + 1
    assert renamed.status_code == 422
    assert renamed.json()["code"] == "idempotency_key_reused"


def test_a_retried_dataset_upload_creates_one_dataset(
    api: Any, db_session: Session, tmp_path: Path
) -> None:
    import numpy as np

    path = tmp_path / "calib.npz"
    np.savez(path, input=np.zeros((4, 16), dtype=np.float32))
    files = {"file": ("calib.npz", path.read_bytes())}
    headers = _key()
    before = _count(db_session, DatasetTable)

    first = api.post("/v1/datasets", files=files, headers=headers)
    retry = api.post("/v1/datasets", files=files, headers=headers)

    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert _count(db_session, DatasetTable) == before + 1


@pytest.fixture(scope="module")
def live_client(live_stack: LiveStack) -> Iterator[httpx.Client]:
    with live_stack.client() as client:
        yield client


def test_concurrent_retries_with_one_key_make_one_job(
    live_stack: LiveStack, live_client: httpx.Client, mlp_bytes: bytes
) -> None:
    model = live_client.post("/v1/models", files={"file": ("mlp.onnx", mlp_bytes)}).json()
    body = {"model_id": model["id"], "preset": "fp16"}
    headers = _key()
    answers: list[httpx.Response] = []
    start = threading.Barrier(8)

    def submit() -> None:
        with live_stack.client() as client:
            start.wait()
            answers.append(client.post("/v1/jobs", json=body, headers=headers))

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    settled = live_client.post("/v1/jobs", json=body, headers=headers)

    accepted = [r for r in answers if r.status_code == 202]
    busy = [r for r in answers if r.status_code == 409]
    assert len(accepted) + len(busy) == 8, [r.text for r in answers]
    assert {r.json()["id"] for r in accepted} == {settled.json()["id"]}
    assert all(r.json()["code"] == "idempotency_key_in_use" for r in busy)
    assert all(r.headers["retry-after"] == "1" for r in busy)
    jobs = live_client.get("/v1/jobs", params={"model_id": model["id"]}).json()["items"]
    assert [job["id"] for job in jobs] == [settled.json()["id"]]
