"""Webhooks from real jobs: API, a jobs worker and a webhooks worker as processes, on Postgres
and Redis, delivering to a receiver in this process."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.builders import build_mlp
from tests.private_stack import private_stack
from tests.stack import LiveStack
from tests.webhooks.receiver import Receiver, signature_matches

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def stack(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """A stack of its own: short retry waits, and webhooks on a worker of their own while the
    jobs worker (one process) is busy with a job."""
    with private_stack(
        live_stack, "webhooks", tmp_path_factory.mktemp("webhooks-stack"), webhook_worker=True,
        MODELPRESS_BENCHMARK_RUNS="5", MODELPRESS_WEBHOOK_RETRY_BACKOFF_S="1",
    ) as stack:  # fmt: skip
        yield stack


@pytest.fixture(scope="module")
def client(stack: LiveStack) -> Iterator[httpx.Client]:
    with stack.client() as http:
        yield http


@pytest.fixture(scope="module")
def model_id(client: httpx.Client, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = build_mlp(tmp_path_factory.mktemp("m") / "mlp.onnx", sizes=(16, 32, 4))
    answer = client.post("/v1/models", files={"file": ("mlp.onnx", path.read_bytes())})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_start_and_completed_arrive_signed_with_the_job_as_body(
    stack: LiveStack, client: httpx.Client, model_id: str, receiver: Receiver
) -> None:
    key = client.get("/v1/webhooks/default/secret").json()["key"]
    body = {
        "model_id": model_id,
        "recipe": {"passes": [{"type": "test_sleep", "seconds": 5}]},
        "webhook": receiver.url("/hooks"),
    }
    job_id = client.post("/v1/jobs", json=body).json()["id"]

    receiver.wait_for(lambda: len(receiver.at("/hooks")) >= 1, why=stack.logs("webhooks"))
    # Delivered while the only jobs worker is still busy with the job itself.
    assert client.get(f"/v1/jobs/{job_id}").json()["status"] == "running"
    final = stack.wait_for_job(client, job_id)
    receiver.wait_for(lambda: len(receiver.at("/hooks")) >= 2, why=stack.logs("webhooks"))

    start, completed = receiver.at("/hooks")
    assert final["status"] == "succeeded"
    assert json.loads(start.body)["status"] == "running"
    assert json.loads(start.body)["id"] == job_id
    assert json.loads(completed.body) == client.get(f"/v1/jobs/{job_id}").json()
    for delivery in (start, completed):
        assert signature_matches(key, delivery.headers, delivery.body)
        assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 120
        assert delivery.headers["content-type"] == "application/json"
    assert start.headers["webhook-id"] != completed.headers["webhook-id"]
    events = client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json()["items"]
    assert [(e["event"], e["status"], len(e["attempts"])) for e in events] == [
        ("start", "succeeded", 1),
        ("completed", "succeeded", 1),
    ]
    assert events[1]["id"] == completed.headers["webhook-id"]
    assert events[1]["attempts"][0]["status_code"] == 200


def test_a_failed_delivery_is_retried_and_the_filter_is_honoured(
    stack: LiveStack, client: httpx.Client, model_id: str, receiver: Receiver
) -> None:
    receiver.script["/flaky"] = [500, 200]
    body = {
        "model_id": model_id,
        "runs": 3,
        "webhook": receiver.url("/flaky"),
        "webhook_events_filter": ["completed"],
    }
    job_id = client.post("/v1/benchmarks", json=body).json()["id"]
    stack.wait_for_job(client, job_id)

    receiver.wait_for(lambda: len(receiver.at("/flaky")) >= 2, why=stack.logs("webhooks"))
    time.sleep(1.5)  # time for a (wrong) third delivery or start event to show up

    first, retry = receiver.at("/flaky")
    assert first.body == retry.body
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    assert json.loads(first.body)["status"] == "succeeded"
    [event] = client.get(f"/v1/jobs/{job_id}/webhook-deliveries").json()["items"]
    assert event["event"] == "completed" and event["status"] == "succeeded"
    assert [(a["number"], a["outcome"], a["status_code"]) for a in event["attempts"]] == [
        (1, "failed", 500),
        (2, "succeeded", 200),
    ]
    assert "HTTP 500" in event["attempts"][0]["error"]


def test_after_a_rotation_both_keys_sign(
    stack: LiveStack, client: httpx.Client, model_id: str, receiver: Receiver
) -> None:
    old = client.get("/v1/webhooks/default/secret").json()["key"]
    new = client.post("/v1/webhooks/default/secret/rotate").json()["key"]
    body = {"model_id": model_id, "runs": 3, "webhook": receiver.url("/rotated"),
            "webhook_events_filter": ["completed"]}  # fmt: skip
    job_id = client.post("/v1/benchmarks", json=body).json()["id"]
    stack.wait_for_job(client, job_id)

    receiver.wait_for(lambda: len(receiver.at("/rotated")) >= 1, why=stack.logs("webhooks"))

    [got] = receiver.at("/rotated")
    first, second = got.headers["webhook-signature"].split(" ")
    assert signature_matches(new, {**got.headers, "webhook-signature": first}, got.body)
    assert signature_matches(old, {**got.headers, "webhook-signature": second}, got.body)
    assert not signature_matches(old, {**got.headers, "webhook-signature": first}, got.body)
