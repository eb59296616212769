"""Outputs belong to one job, and go with it; cancel stops the work; the active-job limit holds
under a burst. Real API and worker processes on Postgres, Redis and S3 over HTTP."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

from app.migrate import upgrade_head
from tests.builders import build_mlp
from tests.conftest import PG_ADMIN_URL, TEST_DB, _admin, free_port, make_bucket
from tests.stack import LiveStack

LIVE_BUCKET = "modelpress-live"  # the live stack's bucket, objects under "models/"


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Seeds of this module's own, so no other test's model or output shares their objects.
    return build_mlp(
        tmp_path_factory.mktemp("outputs") / "small.onnx", sizes=(16, 64, 8), seed=7101
    )


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 256-1024-1024-256 with a batch axis: at batch 256 a run takes tens of milliseconds.
    return build_mlp(tmp_path_factory.mktemp("outputs") / "wide.onnx", seed=7102)


def _tenant_client(stack: LiveStack, name: str) -> httpx.Client:
    tenant = stack.admin("create-tenant", name)
    return stack.client(stack.admin("create-key", tenant["id"])["key"])


def _upload(client: httpx.Client, path: Path) -> dict[str, Any]:
    response = client.post("/v1/models", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return dict(response.json())


def _submit(client: httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _storage_key(stack: LiveStack, model_id: str) -> str:
    engine = create_engine(stack.env["MODELPRESS_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            key = conn.scalar(
                text("SELECT storage_key FROM models WHERE id = :id"), {"id": model_id}
            )
    finally:
        engine.dispose()
    assert key, f"model {model_id} has no row"
    return str(key)


def _objects(endpoint: str, bucket: str, prefix: str) -> list[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"models/{prefix}")
    return [item["Key"] for item in listed.get("Contents", [])]


def _children(client: httpx.Client, model_id: str) -> list[dict[str, Any]]:
    return list(client.get("/v1/models", params={"parent_id": model_id}).json()["items"])


def _wait_for(predicate: Any, what: str, timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := predicate():
            return found
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not happen in {timeout_s} s")


def _sandbox_children(stack: LiveStack) -> list[psutil.Process]:
    """The pass or benchmark children the stack's worker has running now."""
    worker = psutil.Process(stack.procs["worker"].pid)
    found = []
    for proc in worker.children(recursive=True):
        try:
            if "app.pipeline.sandbox_child" in proc.cmdline():
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def test_two_tenants_with_the_same_output_share_one_object_until_both_delete_it(
    live_stack: LiveStack, s3_endpoint: str, tmp_path: Path
) -> None:
    # Weights of this test's own: no other test's output can share (and keep) the object.
    small_model = build_mlp(tmp_path / "shared.onnx", sizes=(16, 64, 8), seed=7103)
    with (
        _tenant_client(live_stack, "outputs-a") as a,
        _tenant_client(live_stack, "outputs-b") as b,
    ):
        body = {"recipe": {"passes": [{"type": "convert_fp16"}]}, "benchmark": {"runs": 3}}
        jobs = [
            (client, _submit(client, {**body, "model_id": _upload(client, small_model)["id"]}))
            for client in (a, b)
        ]
        (job_a, job_b) = [live_stack.wait_for_job(client, job_id) for client, job_id in jobs]
        assert job_a["status"] == job_b["status"] == "succeeded", (job_a["error"], job_b["error"])
        out_a, out_b = job_a["output_model_id"], job_b["output_model_id"]
        key_a, key_b = _storage_key(live_stack, out_a), _storage_key(live_stack, out_b)

        assert key_a == key_b  # the same bytes are stored once
        assert a.delete(f"/v1/models/{out_a}").status_code == 204
        download_b = b.get(f"/v1/models/{out_b}/download")

        assert download_b.status_code == 200
        assert len(download_b.content) == b.get(f"/v1/models/{out_b}").json()["size_bytes"]
        assert a.get(f"/v1/models/{out_a}").status_code == 404
        assert _objects(s3_endpoint, LIVE_BUCKET, key_b) != []  # B still refers to it
        assert b.delete(f"/v1/models/{out_b}").status_code == 204
        _wait_for(
            lambda: _objects(s3_endpoint, LIVE_BUCKET, key_b) == [], "the last referrer's delete"
        )


def test_a_job_canceled_in_its_benchmark_stops_the_child_and_leaves_no_output(
    live_stack: LiveStack, s3_endpoint: str, wide_model: Path
) -> None:
    with live_stack.client() as client:
        model = _upload(client, wide_model)
        job_id = _submit(client, {
            "model_id": model["id"], "input_shapes": {"input": [256, 256]},
            "recipe": {"passes": [{"type": "convert_fp16"}]},
            # Far more than the budget allows: the benchmark runs until its budget is spent.
            "benchmark": {"runs": 10_000, "warmup": 1_000},
        })  # fmt: skip
        _wait_for(
            lambda: client.get(f"/v1/jobs/{job_id}").json()["stage"] == "benchmark",
            "the benchmark stage",
        )
        _wait_for(lambda: _sandbox_children(live_stack), "the benchmark child's start")
        [output] = _children(client, model["id"])
        key = _storage_key(live_stack, output["id"])

        canceled = client.post(f"/v1/jobs/{job_id}/cancel").json()
        start = time.monotonic()
        _wait_for(lambda: not _sandbox_children(live_stack), "the child's end", timeout_s=10)
        stopped_after_s = time.monotonic() - start

        assert canceled["status"] == "canceled"
        assert stopped_after_s < 5
        assert _children(client, model["id"]) == []
        assert client.get(f"/v1/models/{output['id']}/download").status_code == 404
        assert _objects(s3_endpoint, LIVE_BUCKET, key) == []
        # The worker is free at once: a quick job runs now, not after the canceled one's budget.
        quick = live_stack.wait_for_job(
            client,
            _submit(client, {"model_id": model["id"], "preset": "fp16", "benchmark": {"runs": 3}}),
            timeout_s=60,
        )
        assert quick["status"] == "succeeded", quick["error"]
        assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "canceled"


def test_a_failed_benchmark_leaves_no_output(
    live_stack: LiveStack, s3_endpoint: str, small_model: Path
) -> None:
    with live_stack.client() as client:
        model = _upload(client, small_model)
        stored_before = set(_objects(s3_endpoint, LIVE_BUCKET, "objects/"))
        job_id = _submit(client, {
            "model_id": model["id"], "recipe": {"passes": [{"type": "convert_fp16"}]},
            "benchmark": {"runs": 3, "provider": "tensorrt"},  # not on this worker: it fails
        })  # fmt: skip
        job = live_stack.wait_for_job(client, job_id)

        assert (job["status"], job["error"]["code"]) == ("failed", "provider_unavailable")
        assert job["output_model_id"] is None
        assert _children(client, model["id"]) == []
        # The fp16 output was stored before the benchmark failed; it went with the job.
        _wait_for(
            lambda: set(_objects(s3_endpoint, LIVE_BUCKET, "objects/")) == stored_before,
            "the failed job's output object to go",
        )


# A stack of its own: an API whose tenants may have few active jobs, on a database of its own,
# and no worker unless a test starts one (then for the compression queue only).
SPLIT_LIMIT = 5


@pytest.fixture(scope="module")
def split_stack(
    tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, live_stack: LiveStack
) -> Iterator[LiveStack]:
    database = f"{TEST_DB}_split"
    _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _admin(f'CREATE DATABASE "{database}"')
    upgrade_head(f"{PG_ADMIN_URL}/{database}")
    make_bucket(s3_endpoint, "modelpress-split")
    env = {
        **live_stack.env,
        "MODELPRESS_DATABASE_URL": f"{PG_ADMIN_URL}/{database}",
        "MODELPRESS_STORAGE_URL": "s3://modelpress-split/models",
        "MODELPRESS_QUEUE_NAME": f"modelpress-split-{os.getpid()}",
        "MODELPRESS_BENCHMARK_QUEUE_NAME": f"modelpress-split-benchmark-{os.getpid()}",
        "MODELPRESS_MAX_ACTIVE_JOBS_PER_TENANT": str(SPLIT_LIMIT),
    }
    stack = LiveStack(env=env, log_dir=tmp_path_factory.mktemp("split-logs"), port=free_port())
    try:
        stack.start_api()
        yield stack
    finally:
        stack.stop()
        _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_concurrent_submits_never_pass_the_active_job_limit(
    split_stack: LiveStack, small_model: Path
) -> None:
    with _tenant_client(split_stack, "burst") as client:
        model_id = _upload(client, small_model)["id"]
        # No worker consumes this stack's queues: every accepted job stays queued, so active.
        start = threading.Barrier(40)

        def submit(_: int) -> httpx.Response:
            start.wait()
            return client.post("/v1/jobs", json={"model_id": model_id, "preset": "fp16"})

        with ThreadPoolExecutor(max_workers=40) as pool:
            responses = list(pool.map(submit, range(40)))
        statuses = Counter(r.status_code for r in responses)
        refused = {r.json()["code"] for r in responses if r.status_code == 429}
        accepted = [r.json()["id"] for r in responses if r.status_code == 202]
        for job_id in accepted:  # leave nothing queued for the next test's worker
            client.post(f"/v1/jobs/{job_id}/cancel")

    assert statuses == {202: SPLIT_LIMIT, 429: 40 - SPLIT_LIMIT}
    assert refused == {"too_many_active_jobs"}


def test_a_job_canceled_while_its_benchmark_is_queued_leaves_no_output(
    split_stack: LiveStack, s3_endpoint: str, small_model: Path
) -> None:
    queue = split_stack.env["MODELPRESS_QUEUE_NAME"]
    # A worker for the compression queue only: the job waits at benchmark_queued.
    split_stack._spawn("worker", [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool=prefork",
        "--concurrency=1", "--loglevel=INFO", "-Q", queue, "-n", f"split-{os.getpid()}@%h",
    ])  # fmt: skip
    try:
        with _tenant_client(split_stack, "queued") as client:
            model = _upload(client, small_model)
            job_id = _submit(client, {
                "model_id": model["id"], "preset": "fp16", "benchmark": {"runs": 3},
            })  # fmt: skip
            _wait_for(
                lambda: client.get(f"/v1/jobs/{job_id}").json()["stage"] == "benchmark_queued",
                f"the hand-off to the benchmark queue:\n{split_stack.logs('worker')}",
            )
            [output] = _children(client, model["id"])
            key = _storage_key(split_stack, output["id"])
            assert _objects(s3_endpoint, "modelpress-split", key) != []

            canceled = client.post(f"/v1/jobs/{job_id}/cancel").json()

            assert canceled["status"] == "canceled"
            assert _children(client, model["id"]) == []
            assert client.get(f"/v1/models/{output['id']}").status_code == 404
            assert client.get(f"/v1/models/{output['id']}/download").status_code == 404
            assert _objects(s3_endpoint, "modelpress-split", key) == []
    finally:
        split_stack.kill("worker")
