"""Uploads against a real uvicorn whose data folder is a 64 MiB tmpfs: a full disk, a stalled body,
and model checks that run in a sandbox child rather than in the API process.

The server runs embedded (SQLite, local storage, no API keys) in a mount namespace of its own, so
the test needs no privileges; the test reads the tmpfs through /proc/<pid>/root.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from onnx import TensorProto, helper

from app.migrate import upgrade_head
from tests.builders import build_mlp
from tests.conftest import free_port
from tests.memory_probe import peak_rss_growth_mb
from tests.stack import ROOT

MiB = 1024 * 1024
DISK_MB = 64
METRICS_TOKEN = "scrape-me"
VALIDATION_MEMORY_MB = 512
BODY_TIMEOUT_S = 2


@dataclass
class SmallDiskServer:
    url: str
    pid: int
    disk: Path  # the tmpfs, as the server sees it
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def files_on_disk(self) -> list[str]:
        return sorted(str(p.relative_to(self.disk)) for p in self.disk.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallDiskServer]:
    root = tmp_path_factory.mktemp("small-disk")
    data_dir = root / "data"
    data_dir.mkdir()
    database_url = f"sqlite:///{root / 'modelpress.db'}"
    upgrade_head(database_url)
    port = free_port()
    env = {
        **os.environ,
        "MODELPRESS_DATA_DIR": str(data_dir),
        "MODELPRESS_DATABASE_URL": database_url,
        "MODELPRESS_BROKER_URL": f"sqla+sqlite:///{root / 'broker.db'}",
        "MODELPRESS_STORAGE_URL": "",
        "MODELPRESS_MAX_UPLOAD_BYTES": str(256 * MiB),
        "MODELPRESS_BODY_READ_TIMEOUT_S": str(BODY_TIMEOUT_S),
        "MODELPRESS_METRICS_TOKEN": METRICS_TOKEN,
        "MODELPRESS_VALIDATION_MEMORY_LIMIT_MB": str(VALIDATION_MEMORY_MB),
    }
    mount_then_serve = [
        "unshare", "--user", "--map-root-user", "--mount",
        "sh", "-c", f'mount -t tmpfs -o size={DISK_MB}m tmpfs "$0" && exec "$@"', str(data_dir),
        sys.executable, "-m", "uvicorn", "app.main:app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    log = root / "api.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(mount_then_serve, cwd=ROOT, env=env, stdout=out, stderr=out)
    server = SmallDiskServer(
        f"http://127.0.0.1:{port}", proc.pid, Path(f"/proc/{proc.pid}/root{data_dir}"), log
    )
    try:
        _wait_healthy(server, proc)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _wait_healthy(server: SmallDiskServer, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API exited early:\n{server.log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"the API did not start:\n{server.log.read_text()[-4000:]}")


def _model_of(tmp_path: Path, megabytes: int) -> bytes:
    """A valid MLP whose one weight takes `megabytes` MiB."""
    return build_mlp(tmp_path / f"mlp-{megabytes}.onnx", sizes=(256, megabytes * 1024)).read_bytes()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | 0x80 if value else low)
        if not value:
            return bytes(out)


def _memory_bomb(empty_nodes: int = 10_000_000) -> bytes:
    """20 MB on disk, several GB once parsed: each 2-byte empty NodeProto becomes a full object."""
    valid = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "bomb",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    graph = valid.SerializeToString() + b"\x0a\x00" * empty_nodes  # field 1 (node), length 0
    model = helper.make_model(helper.make_graph([], "empty", [], []))
    model.ClearField("graph")
    return model.SerializeToString() + b"\x3a" + _varint(len(graph)) + graph  # field 7 (graph)


def _upload(client: httpx.Client, path: str, name: str, content: bytes) -> httpx.Response:
    return client.post(path, files={"file": (name, content)})


def test_a_model_is_checked_in_a_child_not_in_the_api_process(
    small_disk: SmallDiskServer, tmp_path: Path
) -> None:
    model = _model_of(tmp_path, 24)
    with small_disk.client() as client:
        warm_up = _upload(client, "/v1/models", "small.onnx", _model_of(tmp_path, 1))
        assert warm_up.status_code == 201, warm_up.text

        response, growth_mb = peak_rss_growth_mb(
            small_disk.pid, lambda: _upload(client, "/v1/models", "big.onnx", model)
        )

        assert response.status_code == 201, response.text
        assert response.json()["param_count"] == 256 * 24 * 1024 + 24 * 1024
        # Parsed in the API, the 24 MiB protobuf took it up by twice its size or more.
        assert growth_mb < 16, f"the API grew by {growth_mb:.0f} MB checking a 24 MiB model"
        for uploaded in (warm_up, response):
            assert client.delete(f"/v1/models/{uploaded.json()['id']}").status_code == 204
    assert small_disk.files_on_disk() == []


def test_a_memory_bomb_model_is_refused_by_the_check_limit(small_disk: SmallDiskServer) -> None:
    bomb = _memory_bomb()
    with small_disk.client() as client:
        response, growth_mb = peak_rss_growth_mb(
            small_disk.pid, lambda: _upload(client, "/v1/models", "bomb.onnx", bomb)
        )

        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_model"
        assert growth_mb < 16, f"the API grew by {growth_mb:.0f} MB on a memory bomb"
        assert client.get("/v1/models").json()["items"] == []
        assert client.get("/healthz").status_code == 200
    assert small_disk.files_on_disk() == []


def test_a_disk_that_fills_while_the_upload_arrives_is_507(small_disk: SmallDiskServer) -> None:
    too_big = os.urandom((DISK_MB + 16) * MiB)
    with small_disk.client() as client:
        response = _upload(client, "/v1/models", "huge.onnx", too_big)

        assert response.status_code == 507, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "storage_full"
        assert response.headers["retry-after"]
        assert client.get("/v1/models").json()["items"] == []
    assert small_disk.files_on_disk() == []


def test_a_disk_that_fills_while_storing_is_507_and_keeps_nothing(
    small_disk: SmallDiskServer, tmp_path: Path
) -> None:
    # 40 MiB fits as the upload's temp file, but not a second time in storage.
    model = _model_of(tmp_path, 40)
    buffer = io.BytesIO()
    np.savez(buffer, input=np.ones((40, 256, 1024), np.float32))
    with small_disk.client() as client:
        for path, name, content in (
            ("/v1/models", "forty.onnx", model),
            ("/v1/datasets", "forty.npz", buffer.getvalue()),
        ):
            response = _upload(client, path, name, content)

            assert response.status_code == 507, (path, response.text)
            assert response.json()["code"] == "storage_full"
            assert client.get(path).json()["items"] == []
            assert small_disk.files_on_disk() == []
        # The disk is free again: the next upload that fits goes through.
        ok = _upload(client, "/v1/models", "small.onnx", _model_of(tmp_path, 1))
        assert ok.status_code == 201, ok.text
        assert client.delete(f"/v1/models/{ok.json()['id']}").status_code == 204


def test_a_stalled_upload_is_408_and_leaves_no_temp_file(small_disk: SmallDiskServer) -> None:
    host, port = small_disk.url.removeprefix("http://").split(":")
    part = (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="m.onnx"\r\n\r\n'
        + b"\0" * 4096
    )
    head = (
        f"POST /v1/models HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {10 * MiB}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port)), timeout=BODY_TIMEOUT_S + 20) as sock:
        sock.sendall(head + part)
        time.sleep(0.5)
        assert [p for p in small_disk.files_on_disk() if p.endswith(".part")]  # it was receiving
        started = time.monotonic()
        answer = _read_until_closed(sock)
        waited = time.monotonic() - started

    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"code":"request_timeout"' in answer
    assert waited < BODY_TIMEOUT_S + 5
    assert small_disk.files_on_disk() == []


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_metrics_answer_only_with_the_metrics_token(small_disk: SmallDiskServer) -> None:
    with small_disk.client() as client:
        refused = [
            client.get("/metrics"),
            client.get("/metrics", headers={"Authorization": "Bearer wrong"}),
        ]
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})

    for response in refused:
        assert response.status_code == 401
        assert response.json()["code"] == "unauthorized"
    assert allowed.status_code == 200
    assert "modelpress_jobs" in allowed.text
