"""Run native-code work (passes, benchmarks) in a child process with memory and time limits.

A segfault, an out-of-memory kill or a hang then fails that one job with a clear code, and the
worker process itself keeps serving the next job.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import overload

from app.pipeline.frame import StageError
from app.pipeline.sandbox_child import EXIT_OUT_OF_MEMORY
from app.pipeline.sandbox_protocol import (
    BenchmarkRequest,
    BenchmarkResult,
    PassRequest,
    PassResult,
    SandboxFailure,
    sandbox_result,
)

log = logging.getLogger(__name__)


@overload
def run_in_child(
    request: PassRequest, *, memory_limit_mb: int | None, timeout_s: float
) -> PassResult: ...
@overload
def run_in_child(
    request: BenchmarkRequest, *, memory_limit_mb: int | None, timeout_s: float
) -> BenchmarkResult: ...
def run_in_child(
    request: PassRequest | BenchmarkRequest, *, memory_limit_mb: int | None, timeout_s: float
) -> PassResult | BenchmarkResult:
    """The child's result; StageError with worker_crashed, out_of_memory or timeout otherwise."""
    kind = request.kind
    with tempfile.TemporaryDirectory(prefix="modelpress-child-") as tmp:
        request_path, result_path = Path(tmp) / "request.json", Path(tmp) / "result.json"
        request_path.write_text(request.model_dump_json())
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.pipeline.sandbox_child",
                str(request_path),
                str(result_path),
                str(memory_limit_mb or 0),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            output, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise StageError(
                "timeout", f"the {kind} ran past its limit of {timeout_s:.0f} s"
            ) from None
        except BaseException:
            # The task itself is being stopped (soft time limit, shutdown): never orphan the child.
            proc.kill()
            proc.communicate()
            raise
        tail = output.decode(errors="replace")[-2000:]
        if proc.returncode != 0:
            raise _crash_error(kind, proc.returncode, tail, memory_limit_mb)
        if not result_path.exists():
            raise StageError("worker_crashed", f"the {kind} exited without a result: {tail}")
        result = sandbox_result.validate_json(result_path.read_bytes())
    if isinstance(result, SandboxFailure):
        raise StageError(result.code, result.message)
    if result.kind != kind:
        raise StageError("worker_crashed", f"the {kind} answered with a {result.kind} result")
    return result


def _crash_error(kind: str, returncode: int, tail: str, memory_limit_mb: int | None) -> StageError:
    if returncode == EXIT_OUT_OF_MEMORY or returncode == -signal.SIGKILL:
        # SIGKILL we did not send is the kernel's OOM killer.
        return StageError(
            "out_of_memory", f"the {kind} ran out of memory (limit {memory_limit_mb} MiB)"
        )
    if returncode < 0:
        name = signal.Signals(-returncode).name
        log.warning("%s child died with %s: %s", kind, name, tail)
        return StageError("worker_crashed", f"the {kind} crashed ({name}) in native code")
    log.warning("%s child exited with %d: %s", kind, returncode, tail)
    return StageError("worker_crashed", f"the {kind} exited with status {returncode}")
