"""The CLI process under a busy or slow server, and under Ctrl-C: what it says and leaves."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from tests.cli.serving import CLI
from tests.cli.stub_api import JOB, MODEL, Reply, stub_api

DONE = {**JOB, "status": "succeeded", "progress": 1.0, "stage": "done"}
PRESETS = {"items": [{"name": "int8-dynamic", "description": "d", "recipe": {"passes": []}}]}


def test_waiting_rides_out_503_429_and_a_dropped_connection() -> None:
    replies = iter([
        Reply(503, {"code": "broker_unavailable", "detail": "busy"}, {"Retry-After": "1"}),
        Reply(429, {"code": "rate_limited", "detail": "slow down"}, {"Retry-After": "1"}),
        Reply(drop=True),
    ])  # fmt: skip
    with stub_api(lambda method, path: next(replies, Reply(200, DONE))) as api:
        started = time.monotonic()
        result = subprocess.run(
            [*CLI, "status", "j1", "--wait", "--interval", "0.1", "--url", api.url],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        took = time.monotonic() - started

    assert result.returncode == 0, result.stderr
    assert "job j1: succeeded" in result.stdout
    assert took >= 2.0  # both Retry-After answers were honoured
    assert result.stderr.count("retrying in") == 3


def test_waiting_gives_up_after_the_retry_time() -> None:
    busy = Reply(503, {"code": "broker_unavailable", "detail": "busy"})
    with stub_api(lambda method, path: busy) as api:
        started = time.monotonic()
        result = subprocess.run(
            [*CLI, "--url", api.url, "status", "j1", "--wait", "--retry-for", "2"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        took = time.monotonic() - started

    assert result.returncode == 2
    assert "giving up after 2 s" in result.stderr and "broker_unavailable" in result.stderr
    assert took < 15


def _start_compress(url: str, model: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, "--url", url, "compress", str(model), "--wait"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_ctrl_c_while_the_job_is_created_names_the_job(tmp_path: Path) -> None:
    cli: list[subprocess.Popen[str]] = []

    def script(method: str, path: str) -> Reply:
        if path == "/v1/presets":
            return Reply(200, PRESETS)
        if path == "/v1/models":
            return Reply(201, MODEL)
        if path == "/v1/jobs":
            # The job request has arrived: Ctrl-C now, while the server is still answering it.
            cli[0].send_signal(signal.SIGINT)
            return Reply(202, {**DONE, "status": "queued"}, delay_s=1.5)
        return Reply(404, {"code": "not_found", "detail": path})

    model = tmp_path / "m.onnx"
    model.write_bytes(b"not parsed by the stub")
    with stub_api(script) as api:
        cli.append(_start_compress(api.url, model))
        _, err = cli[0].communicate(timeout=60)

    assert cli[0].returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "interrupted: stopped; job j1 was created and keeps running: modelpress status j1 --wait"
    )
    assert ("DELETE", "/v1/models/m1") not in api.requests  # its job uses it


def test_ctrl_c_while_the_upload_is_stored_deletes_it_and_creates_no_job(tmp_path: Path) -> None:
    cli: list[subprocess.Popen[str]] = []

    def script(method: str, path: str) -> Reply:
        if path == "/v1/presets":
            return Reply(200, PRESETS)
        if path == "/v1/models":
            # The whole body has arrived: Ctrl-C now, while the server is still storing it.
            cli[0].send_signal(signal.SIGINT)
            return Reply(201, MODEL, delay_s=1.5)
        if path == "/v1/models/m1":
            return Reply(204)
        return Reply(500, {"code": "unexpected", "detail": path})

    model = tmp_path / "m.onnx"
    model.write_bytes(b"not parsed by the stub")
    with stub_api(script) as api:
        cli.append(_start_compress(api.url, model))
        _, err = cli[0].communicate(timeout=60)

    assert cli[0].returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "interrupted: stopped after the upload; it was deleted and no job was created"
    )
    assert ("DELETE", "/v1/models/m1") in api.requests
    assert ("POST", "/v1/jobs") not in api.requests
