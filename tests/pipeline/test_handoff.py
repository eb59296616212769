"""A compress job hands itself to the benchmark queue; when that message is lost, the reaper
sends it again within `queued_resend_after_s`, and a duplicate delivery changes nothing."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from celery import Celery
from sqlalchemy import create_engine, text

from tests.builders import build_mlp
from tests.stack import LiveStack

# What the job looks like right after its compress stage handed it over (output stored, the
# benchmark task sent), when the broker has lost that task.
LOST_HANDOFF = text(
    "UPDATE jobs SET status = 'running', stage = 'benchmark_queued', progress = 0.8, "
    "heartbeat_at = now(), finished_at = NULL, metrics = NULL, output_model_id = NULL "
    "WHERE id = :job_id"
)


def _finished_job(live_stack: LiveStack, client: httpx.Client, tmp_path: Path) -> str:
    path = build_mlp(tmp_path / "mlp.onnx", sizes=(16, 32, 8))
    response = client.post("/v1/models", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    body = {
        "model_id": response.json()["id"],
        "recipe": {"passes": [{"type": "convert_fp16"}]},
        "benchmark": {"runs": 3},
    }
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job = live_stack.wait_for_job(client, response.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    return str(job["id"])


def _send_benchmark_task(live_stack: LiveStack, job_id: str) -> str:
    """Deliver the job's benchmark task (again), as a broker redelivery would."""
    producer = Celery(broker=live_stack.env["MODELPRESS_BROKER_URL"])
    queue = live_stack.env["MODELPRESS_BENCHMARK_QUEUE_NAME"]
    task = producer.send_task("modelpress.benchmark_job", args=[job_id], queue=queue)
    producer.close()
    return str(task.id)


def _wait_for_task(live_stack: LiveStack, task_id: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while f"[{task_id}] succeeded" not in live_stack.logs("worker", whole=True):
        assert time.monotonic() < deadline, f"task {task_id} never ran"
        time.sleep(0.2)


def test_a_lost_benchmark_handoff_is_resent_and_a_duplicate_changes_nothing(
    live_stack: LiveStack, tmp_path: Path
) -> None:
    engine = create_engine(live_stack.env["MODELPRESS_DATABASE_URL"])
    with live_stack.client() as client:
        job_id = _finished_job(live_stack, client, tmp_path)
        with engine.begin() as connection:
            connection.execute(LOST_HANDOFF, {"job_id": job_id})

        lost_at = time.monotonic()
        resumed = live_stack.wait_for_job(client, job_id, timeout_s=60)
        waited_s = time.monotonic() - lost_at

        _wait_for_task(live_stack, _send_benchmark_task(live_stack, job_id))
        after_duplicate = client.get(f"/v1/jobs/{job_id}").json()
    engine.dispose()

    assert resumed["status"] == "succeeded", resumed["error"]
    assert resumed["output_model_id"] and resumed["metrics"]
    # The resend interval of the test stack is 8 s: seconds, not a lease plus a job time limit.
    assert waited_s < 30
    assert after_duplicate == resumed
