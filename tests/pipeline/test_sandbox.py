"""Passes run in a child process: a crash, a memory hog or a hang fails one job, clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.pipeline.frame import StageError
from app.pipeline.sandbox import run_in_child
from tests.builders import build_mlp


@pytest.fixture
def request_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv(
        "MODELPRESS_EXTRA_PASS_MODULES", "tests.fault_passes"
    )  # read by the child only
    source = build_mlp(tmp_path / "in.onnx", sizes=(8, 16, 4))

    def make(config: dict) -> dict:
        return {"config": config, "input": str(source), "output": str(tmp_path / "out.onnx"),
                "context": {}}  # fmt: skip

    return make


@pytest.mark.parametrize(
    ("config", "limits", "code"),
    [
        ({"type": "test_crash"}, {"memory_limit_mb": None, "timeout_s": 60}, "worker_crashed"),
        ({"type": "test_allocate"}, {"memory_limit_mb": 1024, "timeout_s": 60}, "out_of_memory"),
        (
            {"type": "test_sleep", "seconds": 30},
            {"memory_limit_mb": None, "timeout_s": 2},
            "timeout",
        ),
    ],
    ids=["segfault", "unbounded-allocation", "hang"],
)
def test_a_misbehaving_pass_becomes_a_coded_failure(
    request_for,
    config: dict,
    limits: dict,
    code: str,  # type: ignore[no-untyped-def]
) -> None:
    with pytest.raises(StageError) as failure:
        run_in_child("pass", request_for(config), **limits)

    assert failure.value.code == code


def test_a_pass_that_works_returns_its_report(request_for) -> None:  # type: ignore[no-untyped-def]
    report = run_in_child(
        "pass",
        request_for({"type": "test_sleep", "seconds": 0}),
        memory_limit_mb=2048,
        timeout_s=60,
    )

    assert report["type"] == "test_sleep"


def test_a_pass_error_in_the_child_keeps_its_code(request_for) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StageError) as failure:
        run_in_child(
            "pass", request_for({"type": "quantize_dynamic", "op_types": ["Conv"]}),
            memory_limit_mb=2048, timeout_s=60,
        )  # fmt: skip

    assert failure.value.code == "nothing_to_quantize"
