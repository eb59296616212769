"""The embedded default (`modelpress serve`: SQLite, SQLite broker) delivers webhooks from its
own webhooks worker, to loopback receivers by default."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.builders import build_mlp
from tests.cli.serving import serve, stop_with_sigterm
from tests.conftest import free_port
from tests.webhooks.receiver import Receiver, signature_matches

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_serve_delivers_signed_events_to_a_local_receiver(
    tmp_path: Path, receiver: Receiver
) -> None:
    model = build_mlp(tmp_path / "mlp.onnx", sizes=(16, 32, 4)).read_bytes()
    port = free_port()
    proc = serve(tmp_path / "data", port)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            model_id = client.post("/v1/models", files={"file": ("m.onnx", model)}).json()["id"]
            key = client.get("/v1/webhooks/default/secret").json()["key"]
            job = client.post(
                "/v1/jobs",
                json={"model_id": model_id, "preset": "int8-dynamic",
                      "webhook": receiver.url("/local")},
            )  # fmt: skip
            assert job.status_code == 202, job.text
            receiver.wait_for(lambda: len(receiver.at("/local")) >= 2, timeout_s=120)
            final = client.get(f"/v1/jobs/{job.json()['id']}").json()
    finally:
        left_running = stop_with_sigterm(proc)

    assert left_running == []
    start, completed = receiver.at("/local")
    assert json.loads(start.body)["status"] == "running"
    assert json.loads(completed.body) == final
    assert all(signature_matches(key, r.headers, r.body) for r in (start, completed))
