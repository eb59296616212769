"""The SDK installed alone into a fresh virtual environment drives a whole job on the live stack:
nothing of the server's stack (onnxruntime, Celery, SQLAlchemy, boto3, numpy) comes with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import build_mlp
from tests.stack import ROOT, LiveStack

SCRIPT = """
import hashlib, json, sys
from modelpress_sdk import Client

with Client(timeout=30) as mp:
    model = mp.upload_model(sys.argv[1], name="fresh-venv")
    job = mp.compress(model, preset="int8-dynamic", benchmark={"runs": 5})
    job.wait(timeout=240)
    path = job.download(sys.argv[2])
    output = job.output_model()
    listed = [j.id for j in mp.list_jobs(model_id=model.id)]
    print(json.dumps({
        "status": job.status,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "output_sha256": output.sha256,
        "ratio": job.metrics.compression_ratio,
        "listed": listed,
        "job_id": job.id,
        "passes": [p["type"] for p in job.report().passes],
    }))
"""
SERVER_ONLY = ["onnxruntime", "celery", "sqlalchemy", "boto3", "numpy", "onnx", "app"]


@pytest.fixture(scope="module")
def sdk_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv with only ./sdk (and httpx, pydantic from the package index) installed."""
    venv = tmp_path_factory.mktemp("sdk-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT / "sdk")],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return python


def test_the_fresh_venv_has_the_sdk_and_nothing_of_the_server(sdk_python: Path) -> None:
    probe = (
        "import importlib.util, json; "
        f"print(json.dumps({{n: bool(importlib.util.find_spec(n)) for n in {SERVER_ONLY!r}}}))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    found = subprocess.run(
        [sdk_python, "-c", probe], capture_output=True, text=True, check=True, env=env, cwd="/"
    )
    failed_import = subprocess.run(
        [sdk_python, "-c", "import onnxruntime"], capture_output=True, text=True, env=env, cwd="/"
    )

    assert json.loads(found.stdout) == dict.fromkeys(SERVER_ONLY, False)
    assert failed_import.returncode != 0 and "No module named 'onnxruntime'" in failed_import.stderr


def test_a_whole_job_from_the_fresh_venv(
    sdk_python: Path, live_stack: LiveStack, tmp_path: Path
) -> None:
    model = build_mlp(tmp_path / "mlp.onnx")
    script = tmp_path / "drive.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env |= {"MODELPRESS_URL": live_stack.url, "MODELPRESS_API_KEY": live_stack.api_key}

    result = subprocess.run(
        [sdk_python, script, model, tmp_path / "out.onnx"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr + live_stack.logs("worker")
    outcome = json.loads(result.stdout)
    assert outcome["status"] == "succeeded"
    assert outcome["sha256"] == outcome["output_sha256"]
    assert outcome["ratio"] > 3 and outcome["listed"] == [outcome["job_id"]]
    assert outcome["passes"] == ["quantize_dynamic"]
    assert (tmp_path / "out.onnx").stat().st_size < model.stat().st_size / 3
