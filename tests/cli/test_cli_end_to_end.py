"""The CLI as a script uses it, against the live stack and against the embedded `serve`."""

from __future__ import annotations

import subprocess
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.builders import build_mlp
from tests.cli.serving import CLI, serve, stop_with_sigterm
from tests.conftest import free_port
from tests.stack import LiveStack


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


def test_server_options_work_after_the_subcommand_too(live_stack: LiveStack) -> None:
    result = subprocess.run(
        [*CLI, "status", "no-such-job", "--url", live_stack.url, "--api-key", live_stack.api_key],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    # The server was reached with the key: the answer is the job's 404, not a usage error.
    assert result.returncode == 2
    assert "not_found" in result.stderr


def _is_utc(stamp: str) -> bool:
    return datetime.fromisoformat(stamp).utcoffset() is not None and stamp.endswith(("Z", "+00:00"))


def test_embedded_serve_compresses_on_sqlite_and_keeps_data_across_restarts(
    mlp_path: Path, tmp_path: Path
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve(data_dir, port)
    try:
        result = _compress(url, mlp_path, tmp_path / "out.onnx")
        assert result.returncode == 0, result.stderr
    finally:
        left_running = stop_with_sigterm(proc)
    assert left_running == []

    assert (data_dir / "modelpress.db").exists()
    proc = serve(data_dir, port)
    try:
        jobs = httpx.get(f"{url}/v1/jobs").json()["items"]
        job = httpx.get(f"{url}/v1/jobs/{jobs[0]['id']}").json()
        models = httpx.get(f"{url}/v1/models").json()["items"]
    finally:
        left_running = stop_with_sigterm(proc)
    assert left_running == []
    assert [j["status"] for j in jobs] == ["succeeded"]
    assert len(models) == 2
    # SQLite keeps no offset: the timestamps read back from it are still marked UTC.
    stamps = [job["created_at"], job["started_at"], job["finished_at"], models[0]["created_at"]]
    assert all(_is_utc(stamp) for stamp in stamps), stamps
