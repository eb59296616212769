"""Faults with real processes: crashing passes, a worker killed mid-job, the broker going away.

Every accepted job must end (succeeded, or failed with a reason) and the service keeps serving.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_mlp
from tests.conftest import PG_ADMIN_URL, TEST_DB, _admin, free_port, make_bucket, wait_for_port
from tests.stack import LiveStack


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mlp(tmp_path_factory.mktemp("faults") / "small.onnx", sizes=(16, 64, 8))


def _upload(client: httpx.Client, path: Path) -> str:
    response = client.post("/v1/models", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _submit(client: httpx.Client, model_id: str, *passes: dict) -> str:
    body = {"model_id": model_id, "recipe": {"passes": list(passes)}, "benchmark": {"runs": 3}}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


@pytest.mark.parametrize(
    ("bad_pass", "code"),
    [({"type": "test_crash"}, "worker_crashed"), ({"type": "test_allocate"}, "out_of_memory")],
)
def test_a_crashing_pass_fails_its_job_and_the_worker_serves_the_next(
    live_stack: LiveStack, small_model: Path, bad_pass: dict, code: str
) -> None:
    with live_stack.client() as client:
        model_id = _upload(client, small_model)

        bad = live_stack.wait_for_job(client, _submit(client, model_id, bad_pass))
        good = live_stack.wait_for_job(client, _submit(client, model_id, {"type": "convert_fp16"}))

    assert (bad["status"], bad["error"]["code"]) == ("failed", code)
    assert good["status"] == "succeeded", good["error"]


def test_a_worker_killed_mid_job_hands_the_job_to_the_next_worker(
    live_stack: LiveStack, small_model: Path
) -> None:
    with live_stack.client() as client:
        model_id = _upload(client, small_model)
        job_id = _submit(client, model_id, {"type": "test_sleep", "seconds": 4})
        _wait_for_stage(client, job_id, "test_sleep")

        live_stack.kill("worker")  # SIGKILL the worker and its pool: no cleanup runs
        live_stack.start_worker()
        job = live_stack.wait_for_job(client, job_id, timeout_s=90)

    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2


def _wait_for_stage(client: httpx.Client, job_id: str, stage: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get(f"/v1/jobs/{job_id}").json()["stage"] == stage:
            return
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} never reached stage {stage}")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A Redis of this test's own, so it can be stopped without touching the shared one."""
    port = free_port()
    proc = _start_redis(port, tmp_path)
    yield port, tmp_path
    proc.terminate()
    proc.wait(timeout=10)


def _start_redis(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_for_port(port)
    return proc


def test_jobs_accepted_while_the_broker_is_down_all_end(
    live_stack: LiveStack, private_redis: tuple[int, Path], small_model: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:  # fmt: skip
    port, workdir = private_redis
    database = f"{TEST_DB}_broker_fault"
    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{database}"')
    env = {
        **live_stack.env,
        "MODELPRESS_DATABASE_URL": f"{PG_ADMIN_URL}/{database}",
        "MODELPRESS_BROKER_URL": f"redis://127.0.0.1:{port}/0",
    }
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], env=env, check=True,
                   capture_output=True, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    make_bucket(env["MODELPRESS_S3_ENDPOINT_URL"], "modelpress-broker-fault")
    env["MODELPRESS_STORAGE_URL"] = "s3://modelpress-broker-fault/models"
    stack = LiveStack(env=env, log_dir=tmp_path_factory.mktemp("broker-fault"), port=free_port())
    try:
        stack.start_api()
        stack.start_worker()
        stack.api_key = stack.admin("create-key", stack.admin("create-tenant", "t")["id"])["key"]
        with stack.client() as client:
            model_id = _upload(client, small_model)
            before = [_submit(client, model_id, {"type": "convert_fp16"}) for _ in range(2)]
            subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)
            during = [_submit(client, model_id, {"type": "convert_fp16"}) for _ in range(3)]
            redis = _start_redis(port, workdir)
            try:
                ended = [stack.wait_for_job(client, j, timeout_s=120) for j in before + during]
            finally:
                redis.terminate()
                redis.wait(timeout=10)
    finally:
        stack.stop()
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    assert [j["status"] for j in ended] == ["succeeded"] * 5, [j["error"] for j in ended]


def test_the_api_recovers_from_a_postgres_restart(live_stack: LiveStack) -> None:
    cluster = os.listdir("/etc/postgresql")[0]
    with live_stack.client() as client:
        assert client.get("/v1/jobs").status_code == 200

        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"],
            check=True, capture_output=True,
        )  # fmt: skip
        statuses = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses.append(client.get("/v1/jobs").status_code)
            if statuses[-1] == 200:
                break
            time.sleep(0.5)

    assert statuses[-1] == 200
    assert set(statuses) <= {200, 503}  # an outage answers 503 problems, never a bare 500


def test_a_job_canceled_while_running_stays_canceled_and_leaves_no_output(
    live_stack: LiveStack, small_model: Path
) -> None:
    with live_stack.client() as client:
        model_id = _upload(client, small_model)
        job_id = _submit(client, model_id, {"type": "test_sleep", "seconds": 3})
        _wait_for_stage(client, job_id, "test_sleep")

        canceled = client.post(f"/v1/jobs/{job_id}/cancel").json()
        time.sleep(5)  # the pass finishes meanwhile; the worker must notice and drop its output
        job = client.get(f"/v1/jobs/{job_id}").json()
        children = client.get("/v1/models", params={"parent_id": model_id}).json()["items"]

    assert canceled["status"] == "canceled"
    assert job["status"] == "canceled" and job["output_model_id"] is None
    assert children == []
