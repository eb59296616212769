"""A canceled job's sandbox child is killed within a poll, not left to run to its time limit."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from pydantic import ConfigDict

from app.compression.passes.base import PassConfig, PassContext
from app.pipeline.frame import JobCanceled
from app.pipeline.sandbox import STOP_POLL_S, run_in_child
from app.pipeline.sandbox_protocol import PassRequest
from tests.builders import build_mlp


class ChildOnlyConfig(PassConfig):
    """A config of a pass only the child registers (tests.fault_passes): its fields ride along."""

    model_config = ConfigDict(extra="allow")


def _sandbox_children() -> list[psutil.Process]:
    return [
        proc
        for proc in psutil.Process().children(recursive=True)
        if "app.pipeline.sandbox_child" in " ".join(proc.cmdline())
    ]


def test_a_stop_request_kills_the_child_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELPRESS_EXTRA_PASS_MODULES", "tests.fault_passes")  # for the child
    request = PassRequest(
        config=ChildOnlyConfig(type="test_sleep", seconds=60),
        input=build_mlp(tmp_path / "in.onnx", sizes=(8, 16, 4)),
        output=tmp_path / "out.onnx",
        context=PassContext(),
    )
    stop_at = time.monotonic() + 1.0  # the job is "canceled" a second in
    seen_running: list[bool] = []

    def should_stop() -> bool:
        seen_running.append(bool(_sandbox_children()))
        return time.monotonic() >= stop_at

    start = time.monotonic()
    with pytest.raises(JobCanceled):
        run_in_child(request, memory_limit_mb=None, timeout_s=60, should_stop=should_stop)

    assert time.monotonic() - start < 1.0 + 2 * STOP_POLL_S + 1.0
    assert seen_running and seen_running[0]  # it was polled while the child ran
    assert _sandbox_children() == []
    assert not (tmp_path / "out.onnx").exists()
