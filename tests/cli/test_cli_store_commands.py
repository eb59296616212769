"""`list`, `download` and `cancel` against the live stack, as a script runs them."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.builders import build_mlp
from tests.cli.serving import CLI
from tests.stack import LiveStack


def _cli(stack: LiveStack, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--url", stack.url, "--api-key", stack.api_key, *args],
        capture_output=True, text=True, timeout=240, check=False, cwd=cwd,
    )  # fmt: skip


@pytest.fixture(scope="module")
def finished_job(live_stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    model = build_mlp(tmp_path_factory.mktemp("store") / "mlp.onnx")
    result = _cli(live_stack, "compress", str(model), "--wait", "--json", "--runs", "5")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_download_by_job_or_model_id_writes_the_output(
    live_stack: LiveStack, finished_job: dict[str, str], tmp_path: Path
) -> None:
    by_job = _cli(live_stack, "download", finished_job["id"], "-o", str(tmp_path / "a.onnx"))
    by_model = _cli(live_stack, "download", finished_job["output_model_id"], cwd=tmp_path)
    missing = _cli(live_stack, "download", "no-such-id", cwd=tmp_path)

    assert by_job.returncode == 0, by_job.stderr
    assert by_model.returncode == 0, by_model.stderr
    default_name = tmp_path / f"{finished_job['output_model_id']}.onnx"
    with live_stack.client() as client:
        output = client.get(f"/v1/models/{finished_job['output_model_id']}").json()
    for path in (tmp_path / "a.onnx", default_name):
        assert hashlib.sha256(path.read_bytes()).hexdigest() == output["sha256"]
    assert missing.returncode == 2 and "not_found" in missing.stderr


def test_list_shows_jobs_and_models(live_stack: LiveStack, finished_job: dict[str, str]) -> None:
    jobs = _cli(live_stack, "list", "--status", "succeeded", "--model", finished_job["model_id"])
    models = _cli(live_stack, "list", "--models", "--json", "--limit", "500")

    assert jobs.returncode == 0, jobs.stderr
    assert [line.split()[0] for line in jobs.stdout.splitlines()[1:]] == [finished_job["id"]]
    model_ids = {json.loads(line)["id"] for line in models.stdout.splitlines()}
    assert {finished_job["model_id"], finished_job["output_model_id"]} <= model_ids


def test_cancel_stops_a_long_job(live_stack: LiveStack, tmp_path: Path) -> None:
    model = build_mlp(tmp_path / "mlp.onnx")
    started = _cli(live_stack, "compress", str(model), "--runs", "10000", "--json")
    assert started.returncode == 0, started.stderr
    job_id = json.loads(started.stdout)["id"]

    canceled = _cli(live_stack, "cancel", job_id)
    shown = _cli(live_stack, "status", job_id, "--json")

    assert canceled.returncode == 0, canceled.stderr
    assert canceled.stdout.strip() == f"job {job_id}: canceled"
    assert json.loads(shown.stdout)["status"] == "canceled" and shown.returncode == 1
