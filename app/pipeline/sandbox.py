"""Run native-code work (passes, benchmarks) in a child process with memory and time limits.

A segfault, an out-of-memory kill or a hang then fails that one job with a clear code, and the
worker process itself keeps serving the next job.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from app.pipeline.frame import JobCanceled, StageError
from app.pipeline.sandbox_child import EXIT_OUT_OF_MEMORY
from app.pipeline.sandbox_protocol import ChildRequest, SandboxFailure, sandbox_result

log = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# prctl(2) option: the signal a process gets when its parent dies (Linux only). Looked up once:
# the child calls it between fork and exec, where only the simplest code is safe.
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


# How often a running child's job is checked for a cancel.
STOP_POLL_S = 1.0


def run_in_child(
    request: ChildRequest[ResultT],
    *,
    memory_limit_mb: int | None,
    timeout_s: float,
    should_stop: Callable[[], bool] | None = None,
) -> ResultT:
    """The child's result; StageError with worker_crashed, out_of_memory or timeout otherwise.

    `should_stop` is polled every STOP_POLL_S while the child runs: once it is true (the job
    was canceled) the child is killed and JobCanceled raised.
    """
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
            preexec_fn=_die_with_parent(),
        )
        try:
            output = _wait(proc, timeout_s, should_stop)
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
        raise StageError(result.code, result.message, trace=result.traceback)
    if not isinstance(result, request.answer_type):
        raise StageError("worker_crashed", f"the {kind} answered with a {result.kind} result")
    return result


def _wait(
    proc: subprocess.Popen[bytes], timeout_s: float, should_stop: Callable[[], bool] | None
) -> bytes:
    """The child's output once it exits; TimeoutExpired past `timeout_s`, JobCanceled once
    `should_stop` says so (the caller kills the child on either)."""
    deadline = time.monotonic() + timeout_s
    while True:
        wait_s = max(0.0, deadline - time.monotonic())
        try:
            # Retrying communicate after a timeout loses no output; it keeps the pipe drained.
            output, _ = proc.communicate(
                timeout=min(wait_s, STOP_POLL_S) if should_stop else wait_s
            )
            return output
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                raise
            if should_stop is not None and should_stop():
                raise JobCanceled("the job was canceled while its child ran") from None


def _die_with_parent() -> Callable[[], None] | None:
    """Run in the child before it starts: the kernel kills it when its parent dies. A pool
    process killed with SIGKILL runs no cleanup, and its child would otherwise run on, holding
    memory and CPU, for up to the job's time limit."""
    if _prctl is None:
        return None
    prctl, parent = _prctl, os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm


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
