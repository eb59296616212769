"""GET /v1/models/{id}/analysis: computed at upload, recomputed for old rows, tenant-isolated."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.db import utcnow
from app.onnx_models import repository as models_repository
from app.onnx_models import service
from app.onnx_models.service import ModelFile
from app.tenants.tables import DEFAULT_TENANT
from tests.builders import build_conv_net
from tests.builders_recurrent import build_crnn_lstm
from tests.conftest import issue_key
from tests.factories import add_job, add_model


@pytest.fixture(scope="module")
def crnn_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_crnn_lstm(tmp_path_factory.mktemp("m") / "crnn.onnx").read_bytes()


def _upload(api: Any, content: bytes, filename: str = "model.onnx") -> str:
    response = api.post("/v1/models", files={"file": (filename, content)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _coverage(body: dict[str, Any], pass_type: str) -> dict[str, Any]:
    return next(c for c in body["analysis"]["passes"] if c["pass_type"] == pass_type)


def test_analysis_of_an_upload_says_what_each_pass_would_touch(
    api: Any, db_session: Session, crnn_bytes: bytes
) -> None:
    model_id = _upload(api, crnn_bytes)
    # Computed by the upload check itself and stored with the row.
    stored = models_repository.get(db_session, model_id, tenant_id=DEFAULT_TENANT)
    assert stored is not None and stored.analysis is not None

    response = api.get(f"/v1/models/{model_id}/analysis")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_id"] == model_id
    analysis = body["analysis"]
    assert analysis["opset"] == 12 and analysis["op_counts"]["LSTM"] == 1
    assert analysis["flags"]["has_recurrent"]
    assert [d["name"] for d in analysis["symbolic_dims"]] == ["?", "width"]
    dynamic = _coverage(body, "quantize_dynamic")
    assert dynamic["touches"] == {"LSTM": 1, "Gemm": 1} and dynamic["leaves"] == {"Conv": 2}
    assert dynamic["summary"].startswith("quantize_dynamic: 1 LSTM, 1 Gemm; leaves 2 Conv")
    assert analysis["calibration_memory"]["estimate_bytes"] > 0
    assert any("recurrent" in note for note in body["notes"])
    assert isinstance(body["workers"], list)


def test_workers_come_from_recent_job_fingerprints(
    api: Any, db_session: Session, tmp_path: Path
) -> None:
    model_id = _upload(api, build_conv_net(tmp_path / "cnn.onnx").read_bytes())
    model = models_repository.get(db_session, model_id, tenant_id=DEFAULT_TENANT)
    assert model is not None
    host = {
        "cpu": "Test CPU 9000",
        "cores": 3,
        "onnxruntime": "1.0",
        "provider": "CPUExecutionProvider",
        "features": ["avx2", "f16c"],
    }
    finished = utcnow() + timedelta(days=1)  # newer than any other row the database may hold
    for hours in (0, 1):
        add_job(
            db_session, model, status="succeeded", metrics={"host": host},
            finished_at=finished - timedelta(hours=hours),
        )  # fmt: skip

    body = api.get(f"/v1/models/{model_id}/analysis").json()

    mine = [w for w in body["workers"] if w["cpu"] == "Test CPU 9000"]
    assert len(mine) == 1  # one host, however many jobs ran there
    assert mine[0]["cores"] == 3 and mine[0]["features"] == ["avx2", "f16c"]
    assert body["workers"][0]["cpu"] == "Test CPU 9000"  # newest first
    assert body["analysis"]["flags"]["conv_heavy"]
    assert any("int8 dot-product" in note for note in body["notes"])


def test_a_row_without_analysis_gets_one_computed_and_stored(
    api: Any, db_session: Session, crnn_bytes: bytes
) -> None:
    model_id = _upload(api, crnn_bytes)
    model = models_repository.get(db_session, model_id, tenant_id=DEFAULT_TENANT)
    assert model is not None
    model.analysis = None  # as rows recorded before the analysis existed
    db_session.commit()

    response = api.get(f"/v1/models/{model_id}/analysis")

    assert response.status_code == 200, response.text
    assert _coverage(response.json(), "quantize_dynamic")["touches"]["LSTM"] == 1
    db_session.refresh(model)
    assert model.analysis is not None and model.analysis["op_counts"]["LSTM"] == 1


def test_another_tenant_and_an_unknown_id_get_404(
    api: Any, db_session: Session, crnn_bytes: bytes
) -> None:
    model_id = _upload(api, crnn_bytes)
    other = {"Authorization": f"Bearer {issue_key(db_session, 'analysis-other')}"}

    foreign = api.get(f"/v1/models/{model_id}/analysis", headers=other)
    unknown = api.get("/v1/models/no-such-model/analysis")

    assert foreign.status_code == 404 and foreign.json()["code"] == "not_found"
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"


def test_a_job_output_is_recorded_with_its_analysis(db_session: Session, tmp_path: Path) -> None:
    parent = add_model(db_session)
    path = build_conv_net(tmp_path / "out.onnx")
    file = ModelFile(
        model_path=path, stored_path=path, packaging="onnx", sha256="1" * 64, key="models/x.onnx"
    )

    row = service.record_output(
        db_session, file, tenant_id=DEFAULT_TENANT, name="out", parent_id=parent.id, job_id="j1"
    )

    assert row.analysis is not None and row.analysis["flags"]["conv_heavy"]
