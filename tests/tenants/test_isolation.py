"""API keys gate every endpoint, and one tenant never sees another's resources."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.onnx_models import repository as models_repository
from app.tenants import service
from app.tenants.tables import DEFAULT_TENANT, ApiKeyTable
from tests.builders import build_mlp
from tests.conftest import issue_key
from tests.factories import add_job


@pytest.fixture
def owned(api: Any, db_session: Session, tmp_path: Any) -> dict[str, str]:
    """A model, a dataset and a job of the "default" tenant (the api fixture's)."""
    model = api.post(
        "/v1/models",
        files={"file": ("m.onnx", build_mlp(tmp_path / "m.onnx", (8, 4)).read_bytes())},
    ).json()
    buffer = io.BytesIO()
    np.savez(buffer, input=np.zeros((2, 8), np.float32))
    dataset = api.post("/v1/datasets", files={"file": ("d.npz", buffer.getvalue())}).json()
    stored = models_repository.get(db_session, model["id"], tenant_id=DEFAULT_TENANT)
    job = add_job(db_session, stored)  # type: ignore[arg-type]
    return {"model": model["id"], "dataset": dataset["id"], "job": job.id}


def test_another_tenant_gets_404_everywhere(
    api: Any, db_session: Session, owned: dict[str, str]
) -> None:
    other = {"Authorization": f"Bearer {issue_key(db_session, 'other-tenant')}"}
    m, d, j = owned["model"], owned["dataset"], owned["job"]
    calls = [
        ("get", f"/v1/models/{m}", None),
        ("get", f"/v1/models/{m}/download", None),
        ("delete", f"/v1/models/{m}", None),
        ("get", f"/v1/datasets/{d}", None),
        ("delete", f"/v1/datasets/{d}", None),
        ("get", f"/v1/jobs/{j}", None),
        ("get", f"/v1/jobs/{j}/report", None),
        ("post", f"/v1/jobs/{j}/cancel", None),
        ("post", "/v1/jobs", {"model_id": m, "preset": "int8-dynamic"}),
        ("post", "/v1/benchmarks", {"model_id": m}),
    ]

    for method, path, body in calls:
        kwargs = {"json": body} if body is not None else {}
        response = api.request(method.upper(), path, headers=other, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"

    for listing in ("/v1/models", "/v1/datasets", "/v1/jobs"):
        assert api.get(listing, headers=other).json()["items"] == []
    assert api.get(f"/v1/models/{m}").status_code == 200  # the owner still sees it


def test_requests_without_a_valid_key_are_401(api: Any, db_session: Session) -> None:
    revoked = service.create_key(db_session, tenant_id=DEFAULT_TENANT)
    service.revoke_key(db_session, revoked.id)

    bad = ["", "Bearer nope", f"Bearer {revoked.secret}", "Basic eDp5"]
    for value in bad:
        headers = {"Authorization": value}
        response = api.get("/v1/models", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"


def test_service_endpoints_need_no_key(api: Any) -> None:
    for path in ("/healthz", "/docs", "/openapi.json", "/"):
        assert api.get(path, headers={"Authorization": ""}).status_code == 200


def test_keys_are_stored_only_as_digests(db_session: Session) -> None:
    secret = issue_key(db_session, "digest-check")

    stored = db_session.scalars(select(ApiKeyTable.key_hash)).all()
    assert secret not in stored
    assert all(len(h) == 64 for h in stored)
