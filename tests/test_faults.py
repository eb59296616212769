"""Faults with real processes: crashing passes, a worker killed mid-job, the broker going away.

Every accepted job must end (succeeded, or failed with a reason) and the service keeps serving.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app.pipeline.leftovers import sweep_temp_folder
from tests.builders import build_mlp
from tests.conftest import free_port, wait_for_port
from tests.private_stack import private_stack
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
        killed_at = datetime.now(UTC)
        left = list(live_stack.tmp_dir.glob(f"job-{job_id}-*"))
        live_stack.start_worker()
        job = live_stack.wait_for_job(client, job_id, timeout_s=90)
    # The sweep (with the kill as its cutoff) takes the dead run's work folder, not the new one's.
    sweep_temp_folder(live_stack.tmp_dir, killed_at)

    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    assert len(left) == 1 and not left[0].exists()


def _wait_for_stage(client: httpx.Client, job_id: str, stage: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.get(f"/v1/jobs/{job_id}").json()["stage"] == stage:
            return
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} never reached stage {stage}")


class PrivateRedis:
    """A Redis of a test's own, so it can be stopped without touching the shared one."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    def stop(self, *, crash: bool = False) -> None:
        """`shutdown nosave`, or SIGKILL when `crash`: either way every message is lost."""
        if self.proc is None:
            return
        if crash:
            self.proc.kill()
        else:
            subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"],
                           check=False, capture_output=True)  # fmt: skip
        self.proc.wait(timeout=10)
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


@pytest.fixture
def private_broker_stack(
    live_stack: LiveStack, private_redis: PrivateRedis, request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveStack]:  # fmt: skip
    """An API and a worker of the test's own on `private_redis`; the worker, as deployed, polls
    for more work while it runs a job (two processes)."""
    with private_stack(
        live_stack, request.node.name, tmp_path_factory.mktemp("broker-fault"), concurrency=2,
        MODELPRESS_BROKER_URL=private_redis.url,
    ) as stack:  # fmt: skip
        yield stack


def test_jobs_accepted_while_the_broker_is_down_all_end(
    private_broker_stack: LiveStack, private_redis: PrivateRedis, small_model: Path
) -> None:
    stack = private_broker_stack
    with stack.client() as client:
        model_id = _upload(client, small_model)
        before = [_submit(client, model_id, {"type": "convert_fp16"}) for _ in range(2)]
        private_redis.stop()
        during = [_submit(client, model_id, {"type": "convert_fp16"}) for _ in range(3)]
        private_redis.start()
        ended = [stack.wait_for_job(client, j, timeout_s=120) for j in before + during]

    assert [j["status"] for j in ended] == ["succeeded"] * 5, [j["error"] for j in ended]


def test_the_broker_going_away_mid_job_leaves_a_worker_that_finishes_it_and_the_next(
    private_broker_stack: LiveStack, private_redis: PrivateRedis, small_model: Path
) -> None:
    stack = private_broker_stack
    with stack.client() as client:
        model_id = _upload(client, small_model)
        in_flight = _submit(client, model_id, {"type": "test_sleep", "seconds": 10})
        _wait_for_stage(client, in_flight, "test_sleep")
        celery_pid = stack.celery_worker_pid()
        time.sleep(1)  # the worker is back to waiting on Redis for more work

        private_redis.stop(crash=True)  # while the worker holds the task, unacknowledged
        time.sleep(4)
        private_redis.start()
        first = stack.wait_for_job(client, in_flight, timeout_s=60)
        after = stack.wait_for_job(
            client, _submit(client, model_id, {"type": "convert_fp16"}), timeout_s=60
        )

    assert first["status"] == "succeeded", (first["error"], stack.logs("worker"))
    assert after["status"] == "succeeded", (after["error"], stack.logs("worker"))
    # The same worker carried the job through the outage: it neither died nor needed restarting.
    assert first["attempts"] == 1
    assert stack.celery_worker_pid() == celery_pid
    assert "Unrecoverable error" not in stack.logs("worker", whole=True)


def test_a_celery_worker_that_exits_is_started_again(
    live_stack: LiveStack, small_model: Path
) -> None:
    killed = live_stack.celery_worker_pid()
    os.kill(killed, signal.SIGKILL)  # as if it had died of an error it could not recover from

    with live_stack.client() as client:
        model_id = _upload(client, small_model)
        job = live_stack.wait_for_job(
            client, _submit(client, model_id, {"type": "convert_fp16"}), timeout_s=60
        )

    assert job["status"] == "succeeded", job["error"]
    assert live_stack.celery_worker_pid() != killed
    assert "starting it again" in live_stack.logs("worker", whole=True)


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
