"""Request ids, structured JSON logs and Prometheus metrics, in-process and on the live stack."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.jobs.tables import JobTable
from app.observability.logging import configure_logging
from app.settings import Settings, get_settings
from tests.builders import build_mlp
from tests.factories import add_job, add_model
from tests.stack import LiveStack

NEW_ID = re.compile(r"[0-9a-f]{32}")
METRICS_TOKEN = "metrics-token-for-tests"


def _json_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except ValueError:
            continue
        if isinstance(parsed, dict):
            lines.append(parsed)
    return lines


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/v1/jobs", None, 200),
        ("GET", "/v1/jobs/no-such-job", None, 404),
        ("POST", "/v1/jobs", {"model_id": 5}, 422),
    ],
)
def test_the_callers_request_id_comes_back(
    api: Any, method: str, path: str, body: Any, status: int
) -> None:
    response = api.request(method, path, json=body, headers={"X-Request-ID": "pipeline-run.42_a"})

    assert response.status_code == status
    assert response.headers["X-Request-ID"] == "pipeline-run.42_a"


def test_a_request_without_a_key_gets_a_new_request_id(api: Any) -> None:
    response = api.get("/v1/jobs", headers={"Authorization": ""})

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert NEW_ID.fullmatch(response.headers["X-Request-ID"])


@pytest.mark.parametrize("given", ["has spaces in it", "x" * 129, "semi;colon"])
def test_an_odd_request_id_is_replaced(api: Any, given: str) -> None:
    response = api.get("/v1/jobs", headers={"X-Request-ID": given})

    assert NEW_ID.fullmatch(response.headers["X-Request-ID"])


def test_each_request_writes_one_json_line_with_its_id_and_tenant(api: Any) -> None:
    stream = io.StringIO()
    configure_logging(stream=stream, force=True)
    try:
        api.get("/v1/jobs/missing-job", headers={"X-Request-ID": "trace-me-1"})
    finally:
        configure_logging(force=True)

    lines = [line for line in _json_lines(stream.getvalue()) if line.get("event") == "request"]
    assert len(lines) == 1, stream.getvalue()
    (line,) = lines
    assert line["request_id"] == "trace-me-1"
    assert line["tenant_id"] == "default"
    assert line["method"] == "GET"
    assert line["route"] == "/v1/jobs/{job_id}"
    assert line["status"] == 404
    assert line["duration_ms"] >= 0
    assert line["level"] == "info"
    assert "timestamp" in line


@pytest.fixture
def metrics_api(api: Any) -> Iterator[Any]:
    """The in-process app with a metrics token set, as an operator deploys it."""
    app = api.app
    app.dependency_overrides[get_settings] = lambda: Settings(
        max_upload_bytes=16 * 1024 * 1024, metrics_token=METRICS_TOKEN
    )
    yield api


def _scrape(client: Any) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "X-Request-ID" in response.headers
    return str(response.text)


def test_metrics_expose_requests_job_durations_failures_and_queues(
    metrics_api: Any, db_session: Session
) -> None:
    model = add_model(db_session)
    now = utcnow()
    add_job(
        db_session, model, status="failed", kind="compress",
        started_at=now - timedelta(seconds=42), finished_at=now,
        error={"code": "out_of_memory", "message": "too big"},
    )  # fmt: skip
    add_job(
        db_session, model, status="succeeded", kind="benchmark",
        started_at=now - timedelta(seconds=3), finished_at=now,
    )  # fmt: skip
    add_job(db_session, model, status="queued")
    metrics_api.get("/v1/jobs/missing-job")

    text = _scrape(metrics_api)

    assert re.search(
        r'modelpress_http_request_duration_seconds_bucket\{le="[^"]+",method="GET",'
        r'route="/v1/jobs/\{job_id\}",status="404"\} [1-9]',
        text,
    ), text
    assert (
        'modelpress_job_duration_seconds_bucket{kind="compress",le="60.0",outcome="failed"} 1.0'
        in text
    )
    assert (
        'modelpress_job_duration_seconds_bucket{kind="compress",le="30.0",outcome="failed"} 0.0'
        in text
    )
    assert 'modelpress_job_duration_seconds_count{kind="benchmark",outcome="succeeded"} 1.0' in text
    assert 'modelpress_job_failures_total{code="out_of_memory"} 1.0' in text
    assert "# TYPE modelpress_job_failures_total counter" in text
    queue = get_settings().queue_name
    assert f'modelpress_queue_depth{{queue="{queue}"}}' in text
    assert 'modelpress_jobs{status="queued"} 1.0' in text


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mlp(tmp_path_factory.mktemp("observability") / "mlp.onnx", sizes=(8, 16, 4))


def _stored_report(stack: LiveStack, job_id: str) -> dict[str, Any]:
    engine = create_engine(stack.env["MODELPRESS_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            report = conn.execute(select(JobTable.report).where(JobTable.id == job_id)).scalar()
    finally:
        engine.dispose()
    return dict(report or {})


def test_an_internal_error_keeps_its_traceback_for_operators_only(
    live_stack: LiveStack, mlp: Path
) -> None:
    with live_stack.client() as client:
        upload = client.post("/v1/models", files={"file": (mlp.name, mlp.read_bytes())})
        assert upload.status_code == 201, upload.text
        submitted = client.post(
            "/v1/jobs",
            json={"model_id": upload.json()["id"], "recipe": {"passes": [{"type": "test_raise"}]}},
            headers={"X-Request-ID": "submit-raise-1"},
        )
        assert submitted.status_code == 202, submitted.text
        assert submitted.headers["X-Request-ID"] == "submit-raise-1"
        job_id = submitted.json()["id"]
        job = live_stack.wait_for_job(client, job_id)
        public_report = client.get(f"/v1/jobs/{job_id}/report").text

    assert job["error"]["code"] == "internal_error"
    assert "a bug deep inside a pass" in job["error"]["message"]
    assert "Traceback" not in job["error"]["message"]
    assert "Traceback" not in public_report
    trace = _stored_report(live_stack, job_id)["internal_error"]["traceback"]
    assert "Traceback (most recent call last)" in trace
    assert "_unexpected_bug" in trace and "ZeroDivisionError" in trace

    worker_lines = _json_lines(live_stack.logs("worker", whole=True))
    job_lines = [line for line in worker_lines if line.get("job_id") == job_id]
    events = {line["event"] for line in job_lines}
    assert {"job_started", "job_failed"} <= events, job_lines
    (failed,) = [line for line in job_lines if line["event"] == "job_failed"]
    assert failed["code"] == "internal_error"
    assert "_unexpected_bug" in failed["traceback"]
    assert failed["tenant_id"] and failed["kind"] == "compress"
    # Celery's own lines about the task name the job too.
    assert any(line["logger"].startswith("celery") for line in job_lines), job_lines

    api_lines = _json_lines(live_stack.logs("api", whole=True))
    (submit_line,) = [line for line in api_lines if line.get("request_id") == "submit-raise-1"]
    assert submit_line["route"] == "/v1/jobs"
    assert submit_line["status"] == 202


def test_a_succeeded_job_is_logged_with_its_duration(live_stack: LiveStack, mlp: Path) -> None:
    with live_stack.client() as client:
        upload = client.post("/v1/models", files={"file": (mlp.name, mlp.read_bytes())})
        job_id = client.post(
            "/v1/jobs",
            json={"model_id": upload.json()["id"], "recipe": {"passes": [{"type": "convert_fp16"}]},
                  "benchmark": {"runs": 3}},
        ).json()["id"]  # fmt: skip
        job = live_stack.wait_for_job(client, job_id)
    assert job["status"] == "succeeded", job["error"]

    lines = [
        line
        for line in _json_lines(live_stack.logs("worker", whole=True))
        if line.get("job_id") == job_id
    ]
    (done,) = [line for line in lines if line["event"] == "job_succeeded"]
    assert done["duration_s"] > 0
    assert done["kind"] == "compress"
    stages = {line.get("stage") for line in lines}
    assert "benchmark_queued" in stages


def test_an_unexpected_error_still_carries_its_request_id() -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    app = create_app()

    @app.get("/test-only/boom")
    def boom() -> None:
        raise RuntimeError("a bug in a handler")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/test-only/boom", headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "req-500"
    assert "a bug in a handler" not in response.text
