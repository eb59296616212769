"""The CLI as a script uses it, against the live stack and against the embedded `serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.builders import build_mlp
from tests.conftest import free_port
from tests.stack import ROOT, LiveStack

CLI = [sys.executable, "-m", "app.cli.main"]


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mlp(tmp_path_factory.mktemp("cli") / "mlp.onnx")


def _compress(
    url: str, model: Path, output: Path, *extra: str, api_key: str = ""
) -> subprocess.CompletedProcess[str]:
    auth = ["--api-key", api_key] if api_key else []
    return subprocess.run(
        [*CLI, "--url", url, *auth, "compress", str(model), "--preset", "int8-dynamic", "--wait",
         "-o", str(output), "--runs", "5", *extra],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_compress_wait_downloads_a_smaller_model(
    live_stack: LiveStack, mlp_path: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out.onnx"

    result = _compress(live_stack.url, mlp_path, output, api_key=live_stack.api_key)

    assert result.returncode == 0, result.stderr
    assert "succeeded" in result.stdout
    assert mlp_path.stat().st_size / output.stat().st_size > 3


def test_status_of_an_unknown_job_exits_2_with_the_problem(live_stack: LiveStack) -> None:
    result = subprocess.run(
        [*CLI, "--url", live_stack.url, "--api-key", live_stack.api_key, "status", "no-such-job"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert "not_found" in result.stderr


def _embedded_env(data_dir: Path) -> dict[str, str]:
    # Only the data folder is set: everything else falls back to the embedded defaults.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    env["MODELPRESS_DATA_DIR"] = str(data_dir)
    env["MODELPRESS_BENCHMARK_RUNS"] = "5"
    return env


def _serve(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)], cwd=ROOT, env=_embedded_env(data_dir),
        stdout=(data_dir.parent / "serve.log").open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.terminate()
    raise TimeoutError((data_dir.parent / "serve.log").read_text()[-4000:])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def test_embedded_serve_compresses_on_sqlite_and_keeps_data_across_restarts(
    mlp_path: Path, tmp_path: Path
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(data_dir, port)
    try:
        result = _compress(url, mlp_path, tmp_path / "out.onnx")
        assert result.returncode == 0, result.stderr
    finally:
        _stop(proc)

    assert (data_dir / "modelpress.db").exists()
    proc = _serve(data_dir, port)
    try:
        jobs = httpx.get(f"{url}/v1/jobs").json()["items"]
        models = httpx.get(f"{url}/v1/models").json()["items"]
    finally:
        _stop(proc)
    assert [j["status"] for j in jobs] == ["succeeded"]
    assert len(models) == 2
