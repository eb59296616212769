"""A compress the server would refuse leaves nothing behind on it (live stack)."""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.builders import build_mlp
from tests.cli.serving import CLI
from tests.stack import LiveStack


@pytest.fixture(scope="module")
def mlp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mlp(tmp_path_factory.mktemp("refusals") / "mlp.onnx")


def _models_named(stack: LiveStack, name: str) -> list[dict[str, object]]:
    found, cursor = [], None
    with stack.client() as client:
        while True:
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/models", params=params).json()
            found += [m for m in page["items"] if m["name"] == name]
            cursor = page["next_cursor"]
            if not cursor:
                return found


def _compress(stack: LiveStack, model: Path, name: str, *options: str) -> list[str]:
    return [*CLI, "compress", str(model), "--name", name, *options,
            "--url", stack.url, "--api-key", stack.api_key]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--preset", "int3-magic"], "unknown preset 'int3-magic'"),
        (
            ["--recipe", json.dumps({"passes": [{"type": "quantize_dynamic", "bits": 3}]})],
            "invalid recipe: passes.0.quantize_dynamic.bits",
        ),
        (["--input-shape", "pixels=1,256"], "the model has no input named 'pixels'"),
        (["--input-shape", "input=1,2,256"], "has rank 3 but the model's input has rank 2"),
    ],
    ids=["preset", "recipe-parameter", "input-name", "input-rank"],
)
def test_a_refused_compress_leaves_no_model_behind(
    live_stack: LiveStack, mlp_path: Path, options: list[str], message: str
) -> None:
    name = f"refused-{uuid.uuid4().hex[:8]}"

    result = subprocess.run(
        _compress(live_stack, mlp_path, name, *options),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert result.returncode == 2
    assert message in result.stderr
    assert _models_named(live_stack, name) == []


def test_ctrl_c_during_the_upload_exits_130_and_leaves_nothing(
    live_stack: LiveStack, mlp_path: Path
) -> None:
    name = f"interrupted-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        _compress(live_stack, mlp_path, name, "--wait"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("uploading mlp.onnx")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 130
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last in {
        "interrupted: stopped during the upload; nothing was stored",
        "interrupted: stopped after the upload; it was deleted and no job was created",
    }
    assert _models_named(live_stack, name) == []
