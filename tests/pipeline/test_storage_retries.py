"""A storage outage during a job: the job is retried with backoff, and ends `succeeded` when
storage comes back or `storage_unavailable` when it does not (never `worker_lost`)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.builders import build_mlp
from tests.conftest import free_port
from tests.private_stack import private_stack
from tests.stack import LiveStack


class CuttableRelay:
    """A TCP relay to S3 that a test can cut (connections refused, open ones dropped) and
    restore, like a network outage: the data behind it stays."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._up = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))
        listener.settimeout(0.1)
        self._up.set()
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        self._up.clear()
        time.sleep(0.3)  # the accept loop closes its listener
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._up.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                upstream = socket.create_connection(self.target)
                with self._lock:
                    self._sockets |= {client, upstream}
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


@pytest.fixture(scope="module")
def relay(live_stack: LiveStack) -> Iterator[CuttableRelay]:
    endpoint = httpx.URL(live_stack.env["MODELPRESS_S3_ENDPOINT_URL"])
    relay = CuttableRelay((endpoint.host, endpoint.port or 80))
    yield relay
    relay.cut()


@pytest.fixture(scope="module")
def stack(
    live_stack: LiveStack, relay: CuttableRelay, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveStack]:
    """API and worker reaching S3 through the relay; one S3 attempt per call (no boto3 retries
    hiding the outage) and short job retries."""
    with private_stack(
        live_stack, "storage retries", tmp_path_factory.mktemp("storage-retries"),
        MODELPRESS_S3_ENDPOINT_URL=relay.url, MODELPRESS_S3_MAX_ATTEMPTS="1",
        MODELPRESS_STORAGE_RETRIES="3", MODELPRESS_STORAGE_RETRY_BACKOFF_S="1",
    ) as stack:  # fmt: skip
        yield stack


@pytest.fixture(scope="module")
def model_id(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = build_mlp(tmp_path_factory.mktemp("retries") / "mlp.onnx", sizes=(16, 32, 8))
    with stack.client() as client:
        response = client.post("/v1/models", files={"file": (path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _start_sleeping_job(client: httpx.Client, model_id: str, seconds: float) -> str:
    recipe = {"passes": [{"type": "test_sleep", "seconds": seconds}]}
    body = {"model_id": model_id, "recipe": recipe, "benchmark": {"runs": 3}}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["id"])
    deadline = time.monotonic() + 60
    while client.get(f"/v1/jobs/{job_id}").json()["stage"] != "test_sleep":
        assert time.monotonic() < deadline, "the job never started its pass"
        time.sleep(0.1)
    return job_id


def _watch(client: httpx.Client, job_id: str, seconds: float) -> set[tuple[str, str]]:
    """The (status, stage) pairs a client polling the job sees for `seconds`."""
    seen, deadline = set(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        seen.add((job["status"], job["stage"]))
        time.sleep(0.1)
    return seen


def test_a_job_whose_storage_comes_back_is_retried_and_succeeds(
    stack: LiveStack, relay: CuttableRelay, model_id: str
) -> None:
    with stack.client() as client:
        job_id = _start_sleeping_job(client, model_id, seconds=2)
        relay.cut()  # the pass ends while S3 is unreachable: storing its output fails
        try:
            seen = _watch(client, job_id, seconds=5)
        finally:
            relay.restore()
        job = stack.wait_for_job(client, job_id, timeout_s=60)

    assert ("queued", "retrying") in seen  # handed back for the retry, with its backoff
    assert job["status"] == "succeeded", (job["error"], stack.logs("worker"))
    assert job["attempts"] >= 2


def test_a_job_whose_storage_stays_away_fails_as_storage_unavailable(
    stack: LiveStack, relay: CuttableRelay, model_id: str
) -> None:
    with stack.client() as client:
        job_id = _start_sleeping_job(client, model_id, seconds=1)
        relay.cut()
        try:
            job = stack.wait_for_job(client, job_id, timeout_s=60)
        finally:
            relay.restore()

    assert job["status"] == "failed", stack.logs("worker")
    assert job["error"]["code"] == "storage_unavailable", job["error"]
    assert job["attempts"] == 4  # the first run and three retries
