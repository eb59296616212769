"""Passes and benchmarks run in a child process: a crash, a memory hog or a hang fails one job,
clearly; what works comes back as typed results."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from onnxruntime.quantization import QuantType, quantize_dynamic
from pydantic import ConfigDict

from app.compression.measure.metrics import Metrics, ModelMetrics
from app.compression.measure.options import MeasureOptions
from app.compression.passes.base import PassConfig, PassContext
from app.pipeline.frame import StageError
from app.pipeline.sandbox import run_in_child
from app.pipeline.sandbox_protocol import BenchmarkRequest, PassRequest
from tests.builders import build_mlp

FAST = {"runs": 3, "warmup": 1, "threads": 1, "time_budget_s": 2.0, "measure_memory": False}


class ChildOnlyConfig(PassConfig):
    """A config of a pass only the child registers (tests.fault_passes): its fields ride along."""

    model_config = ConfigDict(extra="allow")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return build_mlp(tmp_path / "in.onnx", sizes=(8, 16, 4))


@pytest.fixture
def request_for(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., PassRequest]:
    monkeypatch.setenv(
        "MODELPRESS_EXTRA_PASS_MODULES", "tests.fault_passes"
    )  # read by the child only

    def make(**config: Any) -> PassRequest:
        return PassRequest(
            config=ChildOnlyConfig(**config), input=source, output=tmp_path / "out.onnx",
            context=PassContext(),
        )  # fmt: skip

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
    request_for: Callable[..., PassRequest], config: dict, limits: dict, code: str
) -> None:
    with pytest.raises(StageError) as failure:
        run_in_child(request_for(**config), **limits)

    assert failure.value.code == code


def test_a_pass_that_works_returns_its_report(request_for: Callable[..., PassRequest]) -> None:
    result = run_in_child(
        request_for(type="test_sleep", seconds=0), memory_limit_mb=2048, timeout_s=60
    )

    assert result.report.type == "test_sleep"


def test_a_pass_error_in_the_child_keeps_its_code(
    request_for: Callable[..., PassRequest],
) -> None:
    with pytest.raises(StageError) as failure:
        run_in_child(
            request_for(type="quantize_dynamic", op_types=["Conv"]),
            memory_limit_mb=2048, timeout_s=60,
        )  # fmt: skip

    assert failure.value.code == "nothing_to_quantize"


def test_a_benchmark_of_a_pair_returns_metrics_and_report_rows(tmp_path: Path) -> None:
    original = build_mlp(tmp_path / "mlp.onnx", sizes=(64, 128, 64))
    int8 = tmp_path / "int8.onnx"
    quantize_dynamic(original, int8, weight_type=QuantType.QInt8)
    request = BenchmarkRequest(model=int8, baseline=original, options=MeasureOptions(**FAST))

    result = run_in_child(request, memory_limit_mb=4096, timeout_s=120)

    assert isinstance(result.metrics, Metrics)
    assert result.metrics.compression_ratio > 1 and result.metrics.original.runs == 3
    assert result.metrics.quantization_error is not None
    assert result.metrics.quantization_error.tensors == len(result.weights) > 0
    assert result.sensitivity and all(row.node for row in result.sensitivity)


def test_a_benchmark_of_one_model_returns_its_block(source: Path) -> None:
    request = BenchmarkRequest(model=source, options=MeasureOptions(**FAST))

    result = run_in_child(request, memory_limit_mb=4096, timeout_s=120)

    assert isinstance(result.metrics, ModelMetrics)
    assert result.metrics.latency_ms.p50 > 0 and result.metrics.host is not None
    assert result.weights == [] and result.sensitivity == []


def test_a_missing_provider_is_a_coded_failure(source: Path) -> None:
    request = BenchmarkRequest(model=source, options=MeasureOptions(**FAST, provider="tensorrt"))

    with pytest.raises(StageError) as failure:
        run_in_child(request, memory_limit_mb=4096, timeout_s=120)

    assert failure.value.code == "provider_unavailable"


# A worker's pool process in miniature: it runs one sleeping pass in a sandbox child.
_PARENT = """
import sys
from pathlib import Path
from app.compression.passes.base import PassContext
from app.pipeline.sandbox import run_in_child
from app.pipeline.sandbox_protocol import PassRequest
from tests.pipeline.test_sandbox import ChildOnlyConfig

config = ChildOnlyConfig(type="test_sleep", seconds=120)
request = PassRequest(config=config, input=Path(sys.argv[1]), output=Path(sys.argv[2]),
                      context=PassContext())
run_in_child(request, memory_limit_mb=None, timeout_s=300)
"""


def _gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE  # dead, waiting to be reaped
    except psutil.NoSuchProcess:
        return True


def test_a_pass_child_dies_with_its_killed_parent(source: Path, tmp_path: Path) -> None:
    env = {**os.environ, "MODELPRESS_EXTRA_PASS_MODULES": "tests.fault_passes"}
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(source), str(tmp_path / "out.onnx")],
        cwd=Path(__file__).resolve().parents[2], env=env,
    )  # fmt: skip
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while not (children := psutil.Process(parent.pid).children()):
            assert time.monotonic() < deadline and parent.poll() is None, "no child started"
            time.sleep(0.1)
        time.sleep(2)  # well into its pass

        parent.kill()  # SIGKILL: the parent runs no cleanup, as when a pool process is killed
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while not _gone(children[0]) and time.monotonic() < deadline:
            time.sleep(0.1)

        assert _gone(children[0])
    finally:
        parent.kill()
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
